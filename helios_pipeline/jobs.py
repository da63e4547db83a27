"""Jobs and schedules of the Helios code location."""


import dagster as dg

ingest_job = dg.define_asset_job(
    "ingest_outcomes",
    # the topics are observed in the same run, just before they are read: the raw tables
    # record the offsets they caught up with, so a later observation marks them unsynced
    # only when the topic really moved past them (a 5-minute observation schedule did it
    # after every run, for nothing)
    selection=dg.AssetSelection.key_prefixes(["topics"], include_sources=True)
    | dg.AssetSelection.assets("bid_requests", "bid_responses", "auction_outcomes",
                               "outcomes", "serving_snapshot"),
    description="Topic offsets → raw tables → outcomes (exactly once) → the API's serving "
                "snapshot. daily_stats and the analyst exports follow by automation.",
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
def daily_report_schedule(context: dg.ScheduleEvaluationContext
                          ) -> dg.RunRequest | dg.SkipReason:
    """Shortly after midnight UTC: yesterday's stats, report and exports."""
    from datetime import timedelta

    from helios_pipeline.automation import PARTITIONS_START

    day = (context.scheduled_execution_time - timedelta(days=1)).strftime("%Y-%m-%d")
    if day < PARTITIONS_START:
        return dg.SkipReason(f"{day} is before the first partition ({PARTITIONS_START})")
    return dg.RunRequest(run_key=f"report-{day}", partition_key=day)


observe_topics_job = dg.define_asset_job(
    "observe_streams",  # not "observe_topics": that is the observable asset's op
    selection=dg.AssetSelection.key_prefixes(["topics"], include_sources=True),
    description="Record end offsets and consumer lag of the topics (also done by every "
                "ingest run; this job is for a look on demand)",
)
