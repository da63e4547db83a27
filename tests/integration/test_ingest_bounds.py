"""An ingest run ends at the watermarks it found when it began, even while traffic goes on.

Before, a run stopped only when the topic went quiet for ``idle_s`` (or at
``max_messages``): under steady traffic it never did, so it read for minutes in one
transaction while the next runs waited for the writer's pool (the soak of issue #9). Here a
producer keeps writing the whole time; the run must end on its own, with everything up to
the starting watermarks in the table and offsets stored to continue from, and the next run
must take what arrived since — nothing lost between the two, nothing twice.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from confluent_kafka import Producer

from helios_pipeline.resources import KafkaResource
from helios_pipeline.warehouse.backend import DuckDBBackend
from helios_pipeline.warehouse.ingest import ingest_topic, stored_offsets
from ingest_services.common.kafka import ensure_topics
from tests.integration.test_ingest_paths import outcome

pytestmark = pytest.mark.integration


def test_a_run_under_steady_traffic_ends_at_its_starting_watermarks(settings, tmp_path):
    import duckdb

    topic = f"bounds-{uuid.uuid4().hex[:8]}"
    s = settings.model_copy(update={"partitions": 3})
    ensure_topics(s, [topic])
    kafka = KafkaResource(bootstrap_servers=s.kafka_bootstrap)
    producer = Producer({"bootstrap.servers": s.kafka_bootstrap, "linger.ms": 5})
    sent, stop = [0], threading.Event()

    def keep_writing() -> None:  # ~1,000 outcomes/s until told to stop (at most 120 s)
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            for _ in range(20):
                producer.produce(topic, outcome(sent[0]), key=str(sent[0]).encode())
                sent[0] += 1
            producer.poll(0)
            time.sleep(0.02)
        producer.flush(10)

    writer = threading.Thread(target=keep_writing, daemon=True)
    writer.start()
    while sent[0] < 2000:
        time.sleep(0.05)
    db = DuckDBBackend(duckdb.connect(str(tmp_path / "w.duckdb")))
    try:
        marks = kafka.watermarks(topic)
        assert sum(marks.values()) > 0
        started = time.monotonic()
        first = ingest_topic(db, kafka.reader_conf("bounds"), topic, "auction_outcomes",
                             idle_s=30.0, stop_at=marks)
        took = time.monotonic() - started
        assert writer.is_alive()  # it ended while traffic went on: not by idleness
        assert took < 30.0
        after_first = stored_offsets(db, topic)
        assert all(after_first.get(p, 0) >= m for p, m in marks.items())
        assert first.inserted == first.messages >= sum(marks.values())
        # the rid range it changed is logged for the serving snapshot's next patch (besides
        # the ('', '') of the new warehouse's first build of outcomes: "everything")
        lo, hi = db.execute("SELECT min(lo_rid), max(hi_rid) FROM serving_changes "
                            "WHERE lo_rid <> ''")[0]
        assert (lo, hi) == db.execute("SELECT min(rid), max(rid) FROM outcomes")[0]
        stop.set()
        writer.join(30)
        second = ingest_topic(db, kafka.reader_conf("bounds"), topic, "auction_outcomes",
                              idle_s=1.0, stop_at=kafka.watermarks(topic))
        rows, keys = db.execute("SELECT count(*), count(DISTINCT rid) FROM auction_outcomes")[0]
        assert first.inserted + second.inserted == rows == keys == sent[0]
    finally:
        stop.set()
        db.close()
