"""The Helios code location: the one ``Definitions`` object, named ``defs``.

Resources are bound from ``EnvVar`` (the settings module's ``HELIOS_*`` names); importing
this module opens no connection and does not branch on the environment.
"""


import dagster as dg

import assets.checks
import assets.exports
import assets.ingest
import assets.profiles
import assets.report
import assets.serving
import assets.warehouse
from assets.streams import observe_topics
from helios_pipeline.jobs import (
    daily_report_schedule,
    daily_stats_job,
    ingest_job,
    observe_topics_job,
    report_job,
)
from helios_pipeline.resources import (
    KafkaResource,
    PathsResource,
    PostgresResource,
    RedisResource,
    WarehouseResource,
)
from sensors.alerts import alert_on_check_failure, alert_on_run_failure
from sensors.outcome_topic import outcome_topic_sensor

defs = dg.Definitions(
    assets=[
        observe_topics,
        *dg.load_assets_from_modules([assets.profiles, assets.ingest, assets.warehouse,
                                      assets.report, assets.exports, assets.serving]),
    ],
    asset_checks=dg.load_asset_checks_from_modules([assets.checks]),
    jobs=[ingest_job, daily_stats_job, report_job, observe_topics_job],
    schedules=[daily_report_schedule],  # the only clock: everything else follows data
    sensors=[outcome_topic_sensor, alert_on_run_failure, alert_on_check_failure,
             # declarative automation (helios_pipeline/automation.py): evaluated in the
             # daemon, a run only when an asset's condition holds
             dg.AutomationConditionSensorDefinition(
                 "helios_automation", target=dg.AssetSelection.all(),
                 default_status=dg.DefaultSensorStatus.RUNNING,
                 minimum_interval_seconds=30)],
    resources={
        "kafka": KafkaResource(
            bootstrap_servers=dg.EnvVar("HELIOS_KAFKA_BOOTSTRAP"),
            topic_outcomes=dg.EnvVar("HELIOS_TOPIC_OUTCOMES"),
            topic_requests=dg.EnvVar("HELIOS_TOPIC_REQUESTS"),
            topic_responses=dg.EnvVar("HELIOS_TOPIC_RESPONSES"),
        ),
        "redis": RedisResource(url=dg.EnvVar("HELIOS_REDIS_URL")),
        "warehouse": WarehouseResource(path=dg.EnvVar("HELIOS_WAREHOUSE_PATH"),
                                       backend=dg.EnvVar("HELIOS_WAREHOUSE_BACKEND"),
                                       dsn=dg.EnvVar("HELIOS_WAREHOUSE_DSN")),
        "postgres": PostgresResource(dsn=dg.EnvVar("HELIOS_POSTGRES_DSN")),
        "paths": PathsResource(reports_dir=dg.EnvVar("HELIOS_REPORTS_DIR"),
                               exports_dir=dg.EnvVar("HELIOS_EXPORTS_DIR"),
                               serving_path=dg.EnvVar("HELIOS_SERVING_PATH")),
    },
    executor=dg.in_process_executor,  # one DuckDB writer per run, in step with the pool
)
