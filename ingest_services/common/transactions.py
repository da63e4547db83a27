"""Transactional read-process-write for the bidder and auctioneer (``HELIOS_KAFKA_TRANSACTIONS``).

Why: by default a stream worker commits its consumed offsets after the broker acknowledged
its outputs, so a worker killed between the two produces those outputs again (at-least-once;
the warehouse collapses the duplicates by key). In a Kafka transaction the outputs and the
consumed offsets (``send_offsets_to_transaction``) commit together or not at all, so a
``read_committed`` reader sees every output exactly once: exactly-once on the wire, on a
broker whose transactions work (Apache Kafka ≥ 2.5: zombies are fenced by the consumer
group's generation, KIP-447, so the transactional id only has to be unique per replica).

The embedded broker (Tansu) runs the whole protocol — init, begin, produce, send offsets,
commit, abort, fencing of a second producer with the same id — and commits the offsets
with the outputs, but it does not hide *aborted* records from ``read_committed`` readers:
after an abort the batch's outputs are on the wire twice (aborted + retried). So on Tansu
this mode is at-least-once, like the default (docs/reliability.md gives the measured limit).

Per batch (:meth:`Transactions.commit_batch`)::

    begin → produce every record → send the batch's next offsets → commit
      abortable error (``txn_requires_abort``)  → abort, rewind the consumer to the batch's
                                                  first offsets (the next poll reads it
                                                  again), back off; after MAX_ATTEMPTS
                                                  batches aborted in a row: TransactionError
      retriable error on commit                 → commit again (bounded, then as above)
      fatal error (fenced, producer unusable)   → TransactionError: the process exits and
                                                  is restarted (``helios up``, Kubernetes)
      any other exception (a bug, a full queue) → abort (best effort), rewind, re-raise
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, TopicPartition

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5  # batches aborted in a row (or commits retried) before giving up
BACKOFF_S = 0.5  # first wait after an abort; doubles per failed attempt …
BACKOFF_MAX_S = 8.0  # … up to this
TIMEOUT_S = 30.0  # each blocking transactional call (the same 30 s a batch gives flush())


class TransactionError(RuntimeError):
    """The transaction cannot go on (fenced, fatal, or aborted MAX_ATTEMPTS times in a row):
    nothing of the batch was committed; the process should exit and be restarted."""


class TxnProducer(Protocol):
    def init_transactions(self, timeout: float) -> None: ...
    def begin_transaction(self) -> None: ...
    def send_offsets_to_transaction(self, positions: list[TopicPartition], group_metadata: Any,
                                    timeout: float) -> None: ...
    def commit_transaction(self, timeout: float) -> None: ...
    def abort_transaction(self, timeout: float) -> None: ...


class TxnConsumer(Protocol):
    def consumer_group_metadata(self) -> Any: ...
    def seek(self, partition: TopicPartition) -> None: ...


class Position(Protocol):
    """What a consumed message must tell: where it was read."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...


def transactional_id(group_id: str, host: str, pid: int) -> str:
    """Unique per replica: the pod name (``host``) in Kubernetes, where the pid is the same
    in every pod, and the pid on one machine, where replicas share the host name. A
    restarted container keeps its pod name and usually pid 1, so it fences its previous
    incarnation's producer."""
    return f"{group_id}-{host}-{pid}"


def next_offsets(msgs: Sequence[Position]) -> list[TopicPartition]:
    """Per partition, the offset after the last message: what a commit stores."""
    top: dict[tuple[str, int], int] = {}
    for msg in msgs:
        key = (msg.topic(), msg.partition())
        top[key] = max(top.get(key, -1), msg.offset())
    return [TopicPartition(t, p, o + 1) for (t, p), o in top.items()]


def first_offsets(msgs: Sequence[Position]) -> list[TopicPartition]:
    """Per partition, the batch's first offset: where a rewind puts the consumer."""
    low: dict[tuple[str, int], int] = {}
    for msg in msgs:
        key = (msg.topic(), msg.partition())
        low[key] = min(low.get(key, msg.offset()), msg.offset())
    return [TopicPartition(t, p, o) for (t, p), o in low.items()]


def _error(exc: KafkaException) -> KafkaError | None:
    err = exc.args[0] if exc.args else None
    return err if isinstance(err, KafkaError) else None


class Transactions:
    """One transactional producer bound to one consumer; :meth:`init` once, then
    :meth:`commit_batch` per consumed batch."""

    def __init__(self, producer: TxnProducer, consumer: TxnConsumer, service: str, *,
                 max_attempts: int = MAX_ATTEMPTS, backoff_s: float = BACKOFF_S,
                 timeout_s: float = TIMEOUT_S,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.producer, self.consumer, self.service = producer, consumer, service
        self.max_attempts, self.backoff_s, self.timeout_s = max_attempts, backoff_s, timeout_s
        self.sleep = sleep
        self.aborted_in_a_row = 0
        self.committed = 0  # transactions committed (for tests and logs)
        self.aborted = 0

    def init(self) -> None:
        """Register the transactional id (fences an older producer with the same id);
        retriable errors (coordinator not ready yet) are retried, bounded."""
        try:
            self._retried(lambda: self.producer.init_transactions(self.timeout_s),
                          "init_transactions")
        except KafkaException as exc:
            raise TransactionError(f"{self.service}: init_transactions failed: {exc}"
                                   ) from exc

    def commit_batch(self, records: Sequence[Any], consumed: Sequence[Position],
                     produce: Callable[[Any], None]) -> bool:
        """``records`` (each handed to ``produce``) and the offsets after ``consumed`` in
        one transaction. True: committed. False: aborted and the consumer rewound to the
        batch, which the next poll reads again."""
        try:
            self.producer.begin_transaction()
            for rec in records:
                produce(rec)
            self.producer.send_offsets_to_transaction(
                next_offsets(consumed), self.consumer.consumer_group_metadata(),
                self.timeout_s)
            self._commit()
        except KafkaException as exc:
            err = _error(exc)
            if err is None or err.fatal() or not err.txn_requires_abort():
                raise TransactionError(f"{self.service}: transaction failed and cannot be "
                                       f"aborted: {exc}") from exc
            self._abort_and_rewind(consumed, str(exc))
            self.aborted_in_a_row += 1
            if self.aborted_in_a_row >= self.max_attempts:
                raise TransactionError(
                    f"{self.service}: {self.aborted_in_a_row} batches aborted in a row, "
                    f"last: {exc}") from exc
            self._backoff(self.aborted_in_a_row)
            return False
        except BaseException:
            # not the broker's doing: leave nothing half-done, then let it end the process
            try:
                self._abort_and_rewind(consumed, "exception inside the transaction")
            except Exception:
                log.exception("abort after an exception failed",
                              extra={"service": self.service})
            raise
        self.aborted_in_a_row = 0
        self.committed += 1
        return True

    def close(self) -> None:
        """Drop the clients, so the worker's ``del producer`` destroys it (its threads)."""
        self.producer = self.consumer = None  # type: ignore[assignment]

    def _commit(self) -> None:
        # retriable: the outcome is unknown, committing again is the documented fix
        self._retried(lambda: self.producer.commit_transaction(self.timeout_s),
                      "transaction commit")

    def _retried(self, call: Callable[[], None], what: str) -> None:
        """``call`` again after a retriable error, at most ``max_attempts`` times in all,
        backing off between; anything else (or the last failure) is raised."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                call()
                return
            except KafkaException as exc:
                err = _error(exc)
                if err is None or not err.retriable() or attempt == self.max_attempts:
                    raise
                log.warning(f"{what} retried", extra={
                    "service": self.service, "attempt": attempt, "error": str(exc)})
                self._backoff(attempt)

    def _abort_and_rewind(self, consumed: Sequence[Position], why: str) -> None:
        self.producer.abort_transaction(self.timeout_s)
        self.aborted += 1
        for tp in first_offsets(consumed):
            try:
                self.consumer.seek(tp)
            except KafkaException as exc:  # revoked meanwhile: its new owner reads it
                log.warning("rewind skipped", extra={
                    "service": self.service, "partition": tp.partition, "error": str(exc)})
        log.warning("transaction aborted; batch will be read again", extra={
            "service": self.service, "reason": why[:300], "messages": len(consumed)})

    def _backoff(self, attempt: int) -> None:
        self.sleep(min(BACKOFF_MAX_S, self.backoff_s * 2 ** (attempt - 1)))
