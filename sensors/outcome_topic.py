"""Requests an ingest run when the outcome topic has moved; never reads a message.

Tansu's high watermark is wrong in absolute terms (start of the last batch + 1) but it
still moves when a batch lands, so the sensor compares watermarks with its cursor only to
decide *whether* to ask for a run; the ingest asset itself reads from the offsets stored
in the warehouse. A run is also requested at least every ``HEARTBEAT_S`` while data keeps
arriving, so a watermark that fails to move never strands data. Run keys make each
watermark state requested once; the ``duckdb_writer`` pool keeps runs from overlapping.
"""


import hashlib
import json
import logging
import time

import dagster as dg
from confluent_kafka import Consumer, TopicPartition

from helios_pipeline.jobs import ingest_job
from helios_pipeline.resources import KafkaResource

HEARTBEAT_S = 300
RUNS_LOG = logging.getLogger("helios.runs")


def topic_watermarks(kafka: KafkaResource, topic: str) -> dict[str, int]:
    c = Consumer(kafka.reader_conf("dagster-outcome-sensor"))
    try:
        md = c.list_topics(topic, timeout=5).topics.get(topic)
        if md is None or md.error is not None:
            return {}
        return {str(p): c.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
                for p in md.partitions}
    finally:
        c.close()


@dg.sensor(job=ingest_job, minimum_interval_seconds=5,
           default_status=dg.DefaultSensorStatus.RUNNING)
def outcome_topic_sensor(context: dg.SensorEvaluationContext, kafka: KafkaResource):
    marks = topic_watermarks(kafka, kafka.topic_outcomes)
    if not marks:
        return dg.SkipReason(f"topic {kafka.topic_outcomes} not found")
    if not any(marks.values()):
        return dg.SkipReason(f"topic {kafka.topic_outcomes} is empty")
    cursor = json.loads(context.cursor) if context.cursor else {}
    now = time.time()
    moved = marks != cursor.get("marks")
    stale = now - cursor.get("requested_at", 0) > HEARTBEAT_S and sum(marks.values()) > 0
    if not moved and not stale:
        return dg.SkipReason("no new data on the outcome topic")
    key = hashlib.sha1(json.dumps(marks, sort_keys=True).encode()).hexdigest()[:16]
    context.update_cursor(json.dumps({"marks": marks, "requested_at": now}))
    suffix = "" if moved else f"-{int(now)}"
    return dg.RunRequest(run_key=f"ingest-{key}{suffix}", tags={"watermarks": json.dumps(marks)})


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING)
def log_run_failures(context: dg.RunFailureSensorContext) -> None:
    """One structured line per failed run, for log shippers and alerting."""
    run = context.dagster_run
    line = json.dumps({
        "event": "run_failed", "run_id": run.run_id, "job": run.job_name,
        "tags": dict(run.tags), "error": context.failure_event.message,
    })
    RUNS_LOG.error(line)  # the daemon's log stream, for shippers and alerting
    context.log.error(line)  # the sensor's tick log in the UI
