"""Requests an ingest run when the outcome topic has moved; never reads a message.

Tansu's high watermark is wrong in absolute terms (start of the last batch + 1) but it
still moves when a batch lands, so the sensor compares watermarks with its cursor only to
decide *whether* to ask for a run; the ingest asset itself reads from the offsets stored
in the warehouse. Idle means no runs: when the watermarks have not moved, a run is asked
for again only if the last ingest has not caught up with them (its ``next_offsets``
metadata is behind a watermark: a run failed, or was cancelled), at most every
``RETRY_S``. While an ingest run is still queued no other is requested (it will read
whatever arrived meanwhile), so a burst of traffic does not pile up runs waiting for the
``duckdb_writer`` pool. Run keys make each watermark state requested once.
"""


import hashlib
import json
import time

import dagster as dg
from confluent_kafka import Consumer, TopicPartition

from helios_pipeline.jobs import ingest_job
from helios_pipeline.resources import KafkaResource

RETRY_S = 60  # a behind-but-unmoving topic is retried this often, never an idle one


def ingested_offsets(instance: dg.DagsterInstance) -> dict[str, int]:
    """Next offset to read per partition, as the last ``auction_outcomes`` ingest left it."""
    event = instance.get_latest_materialization_event(dg.AssetKey("auction_outcomes"))
    mat = event.asset_materialization if event else None
    if mat is None or "next_offsets" not in mat.metadata:
        return {}
    return {str(p): int(o) for p, o in mat.metadata["next_offsets"].value.items()}


def unread(marks: dict[str, int], ingested: dict[str, int]) -> int:
    """Messages below the watermarks that the last ingest had not read (a lower bound:
    Tansu's watermark is itself one)."""
    return sum(max(0, mark - ingested.get(p, 0)) for p, mark in marks.items())


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
    waiting = context.instance.get_run_ids(dg.RunsFilter(
        job_name=ingest_job.name, statuses=[dg.DagsterRunStatus.QUEUED,
                                            dg.DagsterRunStatus.NOT_STARTED]), limit=1)
    if waiting:  # it has not read yet: it will take these messages too (cursor unchanged)
        return dg.SkipReason(f"ingest run {waiting[0]} is queued and will read this data")
    if not moved:
        behind = unread(marks, ingested_offsets(context.instance))
        if not behind:
            return dg.SkipReason("idle: the warehouse has caught up with the outcome topic")
        if now - cursor.get("requested_at", 0) < RETRY_S:
            return dg.SkipReason(f"{behind} messages not ingested yet; a run was requested "
                                 f"less than {RETRY_S} s ago")
    key = hashlib.sha1(json.dumps(marks, sort_keys=True).encode()).hexdigest()[:16]
    context.update_cursor(json.dumps({"marks": marks, "requested_at": now}))
    suffix = "" if moved else f"-{int(now)}"
    return dg.RunRequest(run_key=f"ingest-{key}{suffix}", tags={"watermarks": json.dumps(marks)})
