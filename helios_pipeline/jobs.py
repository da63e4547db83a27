"""Jobs and schedules of the Helios code location."""


import dagster as dg

ingest_job = dg.define_asset_job(
    "ingest_outcomes",
    selection=dg.AssetSelection.assets("bid_requests", "bid_responses", "auction_outcomes",
                                       "outcomes", "serving_snapshot", "analyst_exports"),
    description="Topics → raw tables → outcomes (exactly once) → the API's serving snapshot "
                "and the analyst exports' changed days (at most every HELIOS_EXPORT_REFRESH_S)",
    # the exports follow ingest: only days that differ from the warehouse, throttled, and
    # no materialisation at all when they match (an idle warehouse writes nothing)
    config={"ops": {"analyst_exports": {"config": {"only_changed": True}}}},
)

daily_stats_job = dg.define_asset_job(
    "refresh_daily_stats",
    selection=dg.AssetSelection.assets("daily_stats"),
)

report_job = dg.define_asset_job(
    "daily_report",
    selection=dg.AssetSelection.assets("daily_stats", "daily_win_rate_report",
                                       "analyst_exports", "serving_daily_stats"),
)


@dg.schedule(job=report_job, cron_schedule="15 0 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def daily_report_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Shortly after midnight UTC: yesterday's stats, report and exports."""
    from datetime import timedelta

    day = (context.scheduled_execution_time - timedelta(days=1)).strftime("%Y-%m-%d")
    return dg.RunRequest(run_key=f"report-{day}", partition_key=day)


@dg.schedule(job=daily_stats_job, cron_schedule="*/5 * * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def todays_stats_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Keeps today's partition fresh every 5 minutes."""
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    stamp = context.scheduled_execution_time.strftime("%H%M")
    return dg.RunRequest(run_key=f"stats-{day}-{stamp}", partition_key=day)


observe_topics_job = dg.define_asset_job(
    "observe_streams",  # not "observe_topics": that is the observable asset's op
    selection=dg.AssetSelection.key_prefixes(["topics"], include_sources=True),
    description="Record end offsets and consumer lag of the topics",
)


@dg.schedule(job=observe_topics_job, cron_schedule="*/5 * * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def observe_topics_schedule():
    """Topic offsets and lag on the asset pages, every 5 minutes."""
    return dg.RunRequest()
