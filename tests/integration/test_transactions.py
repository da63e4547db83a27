"""Transactional read-process-write (HELIOS_KAFKA_TRANSACTIONS) against the real embedded
broker, as far as it goes: a StreamWorker's committed transactions deliver every output and
advance its group's offsets; a restarted worker resumes after them (nothing twice); an
abortable error mid-transaction aborts, rewinds, and the retry commits. What Tansu does not
do — hide aborted records from read_committed readers — is measured here too, so
docs/reliability.md's statement of the limit fails this test if Tansu ever changes.
The state machine's every branch: tests/unit/test_transactions.py."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from ingest_services.common.kafka import ensure_topics, reader_config
from ingest_services.common.stream_worker import Record, StreamWorker
from ingest_services.settings import KafkaSettings, load_settings

pytestmark = pytest.mark.integration

PARTITIONS = 3


@pytest.fixture
def kafka(tansu) -> tuple[KafkaSettings, str, str, str]:
    tag = uuid.uuid4().hex[:8]
    s = load_settings(KafkaSettings, kafka_bootstrap=f"127.0.0.1:{tansu.port}",
                      kafka_transactions=True, partitions=PARTITIONS,
                      session_timeout_ms=2000, heartbeat_interval_ms=200)
    src, dst = f"txn-src-{tag}", f"txn-dst-{tag}"
    ensure_topics(s, [src, dst])
    return s, src, dst, f"txn-group-{tag}"


def produce_inputs(s: KafkaSettings, topic: str, first: int, n: int) -> None:
    p = Producer({"bootstrap.servers": s.kafka_bootstrap})
    for i in range(first, first + n):
        p.produce(topic, f"in-{i}".encode(), key=str(i).encode())
    assert p.flush(10) == 0


def read(s: KafkaSettings, topic: str, isolation: str, expect: int,
         timeout: float = 30.0) -> list[bytes]:
    """Every value on ``topic`` as a reader with ``isolation`` sees it (until ``expect``
    and a quiet second, or ``timeout``)."""
    c = Consumer({**reader_config(s, f"txn-reader-{uuid.uuid4().hex[:6]}"),
                  "isolation.level": isolation})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    out: list[bytes] = []
    deadline, quiet = time.monotonic() + timeout, time.monotonic()
    try:
        while time.monotonic() < deadline:
            got = [m.value() for m in c.consume(500, 0.2) if m.error() is None]
            out += got
            if got:
                quiet = time.monotonic()
            elif len(out) >= expect and time.monotonic() - quiet > 1.0:
                break
    finally:
        c.close()
    return out


def group_offsets(s: KafkaSettings, group: str, topic: str) -> int:
    """Sum over partitions of the group's committed offsets (a fresh group member reads
    them; it does not join, so it disturbs nothing)."""
    c = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": group})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
        return sum(max(tp.offset, 0) for tp in tps)
    finally:
        c.close()


def transform(dst: str):
    def handler(msgs) -> list[Record]:
        return [Record(dst, m.key(), b"out-" + m.value()[3:]) for m in msgs]
    return handler


def run_until(worker: StreamWorker, done, timeout: float = 60.0) -> None:
    t = threading.Thread(target=worker.run, daemon=True)
    t.start()
    deadline = time.monotonic() + timeout
    try:
        while not done() and time.monotonic() < deadline and t.is_alive():
            time.sleep(0.2)
    finally:
        worker.stop()
        t.join(30)
    assert not t.is_alive()
    assert done(), "the worker did not get there in time"


def test_committed_transactions_deliver_outputs_and_offsets_and_a_restart_resumes(kafka):
    s, src, dst, group = kafka
    produce_inputs(s, src, 0, 300)
    first = StreamWorker(s, "txn-test", src, group, transform(dst), batch_size=50)
    assert first.txn is not None
    run_until(first, lambda: group_offsets(s, group, src) == 300)
    assert first.txn.committed >= 1 and first.txn.aborted == 0

    produce_inputs(s, src, 300, 200)  # arrives while no worker runs
    second = StreamWorker(s, "txn-test", src, group, transform(dst), batch_size=50)
    run_until(second, lambda: group_offsets(s, group, src) == 500)
    assert second.txn.aborted == 0

    outputs = read(s, dst, "read_committed", expect=500)
    counts = Counter(outputs)
    assert set(counts) == {f"out-{i}".encode() for i in range(500)}
    assert max(counts.values()) == 1  # the restart resumed after the committed offsets


def test_an_abortable_error_aborts_rewinds_and_the_retry_commits(kafka):
    """A delivery failure inside the transaction (injected as librdkafka reports it: an
    error that requires an abort) after some outputs were produced: the worker aborts,
    rewinds to the batch and commits it on the next poll; the group's offsets advance once.
    On Tansu the aborted outputs stay visible to read_committed readers (the limit)."""
    s, src, dst, group = kafka
    produce_inputs(s, src, 0, 120)
    worker = StreamWorker(s, "txn-test", src, group, transform(dst), batch_size=500)
    real_produce, failed = worker._produce, []

    def produce_then_fail_once(rec: Record) -> None:
        real_produce(rec)
        if not failed:
            worker.producer.flush(10)  # the aborted output is on the broker, not just queued
            failed.append(rec.value)
            raise KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, "injected",
                                            txn_requires_abort=True))

    worker._produce = produce_then_fail_once
    run_until(worker, lambda: group_offsets(s, group, src) == 120)
    assert worker.txn.aborted == 1 and worker.txn.committed >= 1

    expected = {f"out-{i}".encode() for i in range(120)}
    uncommitted = Counter(read(s, dst, "read_uncommitted", expect=121))
    assert set(uncommitted) == expected
    assert uncommitted[failed[0]] == 2  # produced in the aborted and the committed transaction
    committed_view = Counter(read(s, dst, "read_committed", expect=120))
    assert set(committed_view) == expected  # every committed output, none lost
    leaked = sum(committed_view.values()) - len(expected)
    # Apache Kafka: 0. Tansu: the aborted output is shown (docs/reliability.md says so;
    # if this fails, Tansu hides aborted records now: update the docs and this line)
    assert leaked == 1, committed_view
