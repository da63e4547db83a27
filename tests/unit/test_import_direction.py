"""Dependencies run one way: the streaming services never load the Dagster half.

Two checks, so a drift is caught whichever way it comes: import-linter's static contracts
(``[tool.importlinter]`` in pyproject.toml: services ↛ Dagster half, only the code location
imports assets and sensors, bench ↛ tests), and a live import of every service module in a
fresh interpreter, which must leave Dagster, DuckDB and the platform modules unloaded.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import ingest_services

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = ("helios_pipeline", "assets", "sensors", "dagster", "duckdb", "tests", "bench")


def test_import_linter_contracts_are_kept() -> None:
    exe = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(exe), "--no-cache"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "4 kept, 0 broken" in res.stdout, res.stdout


def _service_modules() -> list[str]:
    return sorted(
        m.name for m in pkgutil.walk_packages(ingest_services.__path__, "ingest_services.")
    )


def test_every_service_module_imports_without_the_dagster_half() -> None:
    modules = _service_modules()
    assert "ingest_services.runner" in modules and "ingest_services.gateway.app" in modules
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted(n for n in sys.modules if n.split('.')[0] in {FORBIDDEN!r})))"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.splitlines()[-1]) == []


def test_a_service_pod_starts_with_only_its_own_settings(monkeypatch) -> None:
    """A bad value meant for another component does not stop a bidder (its group only)."""
    from ingest_services.settings import BidderSettings, SettingsError, load_settings

    monkeypatch.setenv("HELIOS_GATEWAY_PORT", "not-a-port")
    monkeypatch.setenv("HELIOS_DAGSTER_PORT", "not-a-port")
    assert load_settings(BidderSettings).bidder_group  # starts
    try:
        load_settings()
    except SettingsError as exc:  # the whole platform's settings do see it
        assert "HELIOS_GATEWAY_PORT" in str(exc)
    else:
        raise AssertionError("Settings accepted HELIOS_GATEWAY_PORT=not-a-port")
