"""The offset-gap guard (common/offset_gaps.py) on the real embedded broker.

A real gap in a partition's offsets is made the way Kafka makes one: a transactional
producer's commit marker takes an offset that no reader is ever handed. A stream worker
and the Dagster ingest reader, both with the guard on, meet that gap: each seeks back and
re-reads it until the wait passes, then accepts it, counts it, and goes on; every record
before and after it is handled exactly once and the committed offsets end past it.
(The race the guard is for — a later batch served before an earlier one is stored —
cannot be forced on demand; the decisions it takes then are tested in
tests/unit/test_offset_gaps.py.)"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter

import duckdb
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from helios_pipeline.warehouse.ingest import ChunkReader
from ingest_services.common.kafka import ensure_topics, reader_config
from ingest_services.common.stream_worker import OFFSET_GAPS, Record, StreamWorker
from ingest_services.settings import KafkaSettings, load_settings

pytestmark = pytest.mark.integration

WAIT_MS = 600


@pytest.fixture
def gapped(tansu) -> tuple[KafkaSettings, str, int]:
    """A one-partition topic: in-0..4, a committed transaction of in-5..9 (its marker at
    offset 10), in-11..15 — fifteen records around one offset that holds none."""
    s = load_settings(KafkaSettings, kafka_bootstrap=f"127.0.0.1:{tansu.port}",
                      partitions=1, kafka_gap_wait_ms=WAIT_MS,
                      session_timeout_ms=2000, heartbeat_interval_ms=200)
    topic = f"gaps-{uuid.uuid4().hex[:8]}"
    ensure_topics(s, [topic, f"{topic}-out"])
    plain = Producer({"bootstrap.servers": s.kafka_bootstrap})
    for i in range(5):
        plain.produce(topic, f"in-{i}".encode(), partition=0)
    assert plain.flush(10) == 0
    txn = Producer({"bootstrap.servers": s.kafka_bootstrap,
                    "transactional.id": f"gap-maker-{topic}"})
    txn.init_transactions(10)
    txn.begin_transaction()
    for i in range(5, 10):
        txn.produce(topic, f"in-{i}".encode(), partition=0)
    txn.commit_transaction(10)
    for i in range(11, 16):
        plain.produce(topic, f"in-{i}".encode(), partition=0)
    assert plain.flush(10) == 0
    return s, topic, 15


def offsets_handed(s: KafkaSettings, topic: str) -> list[int]:
    c = Consumer({**reader_config(s, "gap-probe"), "isolation.level": "read_committed"})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got: list[int] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(got) < 15:
        got += [m.offset() for m in c.consume(100, 0.2) if m.error() is None]
    c.close()
    return got


def committed(s: KafkaSettings, group: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": group})
    try:
        return c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        c.close()


def test_the_topic_really_has_a_gap(gapped) -> None:
    s, topic, n = gapped
    handed = offsets_handed(s, topic)
    assert len(handed) == n
    assert [b - a for a, b in itertools.pairwise(handed)].count(1) == n - 2
    assert max(b - a for a, b in itertools.pairwise(handed)) == 2


def test_a_stream_worker_rereads_the_gap_then_accepts_it_and_loses_nothing(gapped) -> None:
    s, topic, _n = gapped
    group, handled = f"gaps-{uuid.uuid4().hex[:6]}", []

    def handler(msgs) -> list[Record]:
        handled.extend(m.value() for m in msgs)
        return [Record(f"{topic}-out", None, m.value()) for m in msgs]

    skipped = OFFSET_GAPS.labels("gap-test", "skipped")
    before = skipped._value.get()
    worker = StreamWorker(s, "gap-test", topic, group, handler, batch_size=4)
    assert worker.gaps is not None and worker.gaps.wait_s == WAIT_MS / 1000
    t = threading.Thread(target=worker.run, daemon=True)
    started = time.monotonic()
    t.start()
    deadline = started + 60
    while time.monotonic() < deadline and committed(s, group, topic) < 16:
        time.sleep(0.2)
    worker.stop()
    t.join(30)
    assert not t.is_alive()
    assert Counter(handled) == Counter(f"in-{i}".encode() for i in (*range(10), *range(11, 16)))
    assert committed(s, group, topic) == 16  # past the gap
    assert skipped._value.get() - before == 1 and worker.gaps.skipped == 1
    assert worker.gaps.refetched == 0


def test_the_ingest_reader_does_the_same(gapped) -> None:
    s, topic, _n = gapped
    conf = {**reader_config(s, "gap-ingest"), "isolation.level": "read_committed"}
    reader = ChunkReader(conf, topic, {}, max_messages=1000, idle_s=WAIT_MS / 1000 + 2,
                         chunk=1000, gap_wait_s=WAIT_MS / 1000)
    reader.start()
    batches = list(reader)
    reader.join(10)
    values = [v for b in batches for v in b.column("value").to_pylist()]
    assert sorted(values) == sorted(f"in-{i}".encode() for i in (*range(10), *range(11, 16)))
    assert reader.gaps is not None and reader.gaps.skipped == 1
    with duckdb.connect() as con:  # the offsets the reader would store: past the gap
        con.register("b", batches[0])
        assert con.execute("SELECT max(\"offset\") FROM b").fetchone()[0] == 15
