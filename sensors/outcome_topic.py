"""Requests an ingest run when the outcome topic has moved; never reads a message.

Tansu's high watermark is wrong in absolute terms (start of the last batch + 1) but it
still moves when a batch lands, so the sensor compares watermarks with its cursor only to
decide *whether* to ask for a run; the ingest asset itself reads from the offsets stored
in the warehouse. Idle means no runs: when the watermarks have not moved, a run is asked
for again only if the last ingest has not caught up with them (its ``next_offsets``
metadata is behind a watermark: a run failed, or was cancelled), at most every
``RETRY_S``. While an ingest run is queued or running no other is requested: each run
reads up to the watermarks it found when it began, and the sensor asks for the next once it
has ended. (Asking while one ran piled runs up under steady traffic, each started and
waiting for the ``duckdb_writer`` pool; found by the soak, issue #9.) Run keys make each
watermark state requested once.
"""


import hashlib
import json
import time

import dagster as dg

from helios_pipeline.jobs import ingest_job
from helios_pipeline.resources import KafkaResource

# queued or running: an ingest run in any of these states holds back the next request
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
             dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
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
    return {str(p): mark for p, mark in kafka.watermarks(topic).items()}


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
    in_flight = context.instance.get_run_ids(dg.RunsFilter(
        job_name=ingest_job.name, statuses=IN_FLIGHT), limit=1)
    if in_flight:  # one ingest at a time; what it does not read, the next run will
        return dg.SkipReason(f"ingest run {in_flight[0]} is still in flight; the next run "
                             f"is requested once it ends (cursor unchanged)")
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
