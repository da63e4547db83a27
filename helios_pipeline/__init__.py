"""Helios's platform half: settings-driven CLI, embedded stack, warehouse, Dagster code."""

import warnings as _warnings

# Helios pins Dagster (1.13.27) and uses two of its beta APIs on purpose
# (multi_observable_source_asset, AssetSelection.key_prefixes(include_sources=)): their
# BetaWarning at every code-location load is noise in the logs, not news. By message, so this
# module does not import Dagster (the API and the CLI import helios_pipeline too).
_warnings.filterwarnings("ignore", message=r".* is currently in beta")
