"""The transactional read-process-write state machine (ingest_services/common/transactions.py)
on a scripted producer and consumer: which calls happen in which order for a commit, an
abortable error, a retriable commit, a fatal error, and repeated aborts. The same code
against the real broker: tests/integration/test_transactions.py."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from ingest_services.common.transactions import (
    MAX_ATTEMPTS,
    TransactionError,
    Transactions,
    first_offsets,
    next_offsets,
    transactional_id,
)
from tests.unit.fakes import FakeMsg


def Msg(topic: str, partition: int, offset: int) -> FakeMsg:
    return FakeMsg(b"", topic=topic, partition=partition, offset=offset)


def kafka_error(*, fatal: bool = False, retriable: bool = False,
                abort: bool = False) -> KafkaException:
    return KafkaException(KafkaError(KafkaError._STATE, "scripted", fatal=fatal,
                                     retriable=retriable, txn_requires_abort=abort))


@dataclass
class Script:
    """Calls in order; ``fail[call]``: exceptions raised by the next calls of that name."""

    calls: list[tuple] = field(default_factory=list)
    fail: dict[str, list[Exception]] = field(default_factory=dict)

    def _call(self, name: str, *args) -> None:
        self.calls.append((name, *args))
        if self.fail.get(name):
            raise self.fail[name].pop(0)

    # producer
    def init_transactions(self, timeout: float) -> None:
        self._call("init")

    def begin_transaction(self) -> None:
        self._call("begin")

    def send_offsets_to_transaction(self, positions, group_metadata, timeout: float) -> None:
        self._call("send_offsets", sorted((tp.topic, tp.partition, tp.offset)
                                          for tp in positions), group_metadata)

    def commit_transaction(self, timeout: float) -> None:
        self._call("commit")

    def abort_transaction(self, timeout: float) -> None:
        self._call("abort")

    # consumer
    def consumer_group_metadata(self) -> str:
        return "group-meta"

    def seek(self, tp: TopicPartition) -> None:
        self._call("seek", (tp.topic, tp.partition, tp.offset))

    def produce(self, rec: str) -> None:
        self._call("produce", rec)


BATCH = [Msg("src", 0, 10), Msg("src", 1, 4), Msg("src", 0, 11), Msg("src", 1, 5)]


def make(script: Script, **kw) -> tuple[Transactions, list[float]]:
    slept: list[float] = []
    return Transactions(script, script, "bidder", sleep=slept.append, **kw), slept


def names(script: Script) -> list[str]:
    return [c[0] for c in script.calls]


def test_offsets_of_a_batch():
    assert sorted((tp.partition, tp.offset) for tp in next_offsets(BATCH)) == [(0, 12), (1, 6)]
    assert sorted((tp.partition, tp.offset) for tp in first_offsets(BATCH)) == [(0, 10), (1, 4)]


def test_transactional_id_is_unique_per_replica_and_stable_per_pod():
    ids = {transactional_id("helios-bidder", h, p)
           for h, p in [("pod-a", 1), ("pod-b", 1), ("host", 100), ("host", 101)]}
    assert len(ids) == 4
    assert transactional_id("g", "pod-a", 1) == transactional_id("g", "pod-a", 1)


def test_a_batch_commits_records_and_offsets_in_one_transaction():
    s = Script()
    txn, slept = make(s)
    assert txn.commit_batch(["r1", "r2"], BATCH, s.produce) is True
    assert s.calls == [("begin",), ("produce", "r1"), ("produce", "r2"),
                       ("send_offsets", [("src", 0, 12), ("src", 1, 6)], "group-meta"),
                       ("commit",)]
    assert (txn.committed, txn.aborted, slept) == (1, 0, [])


def test_an_abortable_error_aborts_rewinds_to_the_batch_and_the_retry_commits():
    s = Script(fail={"send_offsets": [kafka_error(abort=True)]})
    txn, slept = make(s)
    assert txn.commit_batch(["r1"], BATCH, s.produce) is False
    assert names(s) == ["begin", "produce", "send_offsets", "abort", "seek", "seek"]
    assert sorted(c[1] for c in s.calls if c[0] == "seek") == [("src", 0, 10), ("src", 1, 4)]
    assert "commit" not in names(s) and slept == [0.5]
    s.calls.clear()
    assert txn.commit_batch(["r1"], BATCH, s.produce) is True  # the batch, read again
    assert names(s) == ["begin", "produce", "send_offsets", "commit"]
    assert (txn.committed, txn.aborted, txn.aborted_in_a_row) == (1, 1, 0)


def test_a_failed_delivery_reported_at_commit_aborts_too():
    s = Script(fail={"commit": [kafka_error(abort=True)]})
    txn, _ = make(s)
    assert txn.commit_batch(["r1"], BATCH, s.produce) is False
    assert names(s)[-3:] == ["abort", "seek", "seek"]


def test_a_retriable_commit_is_committed_again():
    s = Script(fail={"commit": [kafka_error(retriable=True), kafka_error(retriable=True)]})
    txn, slept = make(s)
    assert txn.commit_batch(["r1"], BATCH, s.produce) is True
    assert names(s).count("commit") == 3 and "abort" not in names(s)
    assert slept == [0.5, 1.0]


def test_fenced_or_fatal_is_not_retried_and_rewinds_nothing():
    s = Script(fail={"send_offsets": [kafka_error(fatal=True)]})
    txn, _ = make(s)
    with pytest.raises(TransactionError, match="cannot be aborted"):
        txn.commit_batch(["r1"], BATCH, s.produce)
    assert "seek" not in names(s) and "commit" not in names(s)


def test_aborts_in_a_row_are_bounded():
    s = Script(fail={"commit": [kafka_error(abort=True) for _ in range(MAX_ATTEMPTS)]})
    txn, slept = make(s)
    for _ in range(MAX_ATTEMPTS - 1):
        assert txn.commit_batch(["r1"], BATCH, s.produce) is False
    with pytest.raises(TransactionError, match=f"{MAX_ATTEMPTS} batches aborted in a row"):
        txn.commit_batch(["r1"], BATCH, s.produce)
    assert slept == [0.5, 1.0, 2.0, 4.0]  # backoff doubles, capped at 8 s


def test_a_non_kafka_exception_aborts_rewinds_and_propagates():
    s = Script(fail={"produce": [BufferError("queue full")]})
    txn, _ = make(s)
    with pytest.raises(BufferError):
        txn.commit_batch(["r1", "r2"], BATCH, s.produce)
    assert names(s) == ["begin", "produce", "abort", "seek", "seek"]


def test_init_retries_a_coordinator_that_is_not_ready_then_gives_up_naming_it():
    s = Script(fail={"init": [kafka_error(retriable=True)]})
    txn, slept = make(s)
    txn.init()
    assert names(s) == ["init", "init"] and slept == [0.5]
    s = Script(fail={"init": [kafka_error(retriable=True)] * MAX_ATTEMPTS})
    txn, _ = make(s)
    with pytest.raises(TransactionError, match="bidder: init_transactions failed"):
        txn.init()
