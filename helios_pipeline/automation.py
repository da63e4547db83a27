"""When the per-day and derived assets refresh: one place for the partitions and the
automation conditions, both read from settings once, when the code location loads.

Idle means no runs. Nothing here runs on a clock alone: today's ``daily_stats`` (and its
PostgreSQL mirror) and the analyst exports are materialised by Dagster's declarative
automation when the warehouse has changed since they last ran *and* a tick of their refresh
cron has passed since then, so they follow ingest at most once per tick and an idle
laptop starts nothing. The daily report stays a schedule (one run a day, for yesterday).

The partitions start on ``HELIOS_PARTITIONS_START`` (``helios up`` sets it to the first day
of data) so the UI shows days that can have data, not months of "missing" before day one.
"""

import math

import dagster as dg

from ingest_services.settings import load_settings

DEFAULT_START = "2026-01-01"  # code locations started without `helios up` nor the setting


def refresh_cron(seconds: float) -> str:
    """A cron that ticks about every ``seconds`` (rounded up to whole minutes, at least one
    minute; hours past 60 minutes)."""
    minutes = max(1, math.ceil(seconds / 60))
    if minutes == 1:
        return "* * * * *"
    if minutes < 60:
        return f"*/{minutes} * * * *"
    hours = min(24, math.ceil(minutes / 60))
    return "0 0 * * *" if hours == 24 else f"0 */{hours} * * *"


def follow_upstream(cron: str) -> dg.AutomationCondition:
    """Materialise (the latest partition) once a tick of ``cron`` has passed and an upstream
    asset has changed, both since this asset last ran; never while it or a parent runs."""
    return (
        dg.AutomationCondition.in_latest_time_window()
        & dg.AutomationCondition.cron_tick_passed(cron, "UTC").since_last_handled()
        & dg.AutomationCondition.any_deps_updated().since_last_handled()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label(f"upstream changed, at most once per {cron!r}")


_settings = load_settings()
PARTITIONS_START = (_settings.partitions_start.isoformat() if _settings.partitions_start
                    else DEFAULT_START)
STATS_CRON = refresh_cron(_settings.stats_refresh_s)
EXPORTS_CRON = refresh_cron(_settings.export_refresh_s)

daily = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC", end_offset=1)
