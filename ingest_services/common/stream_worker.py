"""The consume → handle → produce → ack → commit loop shared by the bidder and auctioneer.

Offsets are committed only after every record produced for a batch is acknowledged by the
broker (at-least-once on the wire); with ``HELIOS_KAFKA_TRANSACTIONS`` the records and the
offsets commit in one Kafka transaction instead (``transactions.py``). A message the
handler cannot process becomes exactly one dead letter with the reason and source offset in
headers, and the loop moves on.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from prometheus_client import Counter, Gauge, Histogram

from ingest_services.common.kafka import consumer_config, producer_config
from ingest_services.common.metrics import PUBLISH_ERRORS
from ingest_services.common.offset_gaps import REFETCH_PAUSE_S, GapGuard, gap_wait_s
from ingest_services.common.transactions import Transactions, next_offsets, transactional_id
from ingest_services.contracts import messages as m
from ingest_services.settings import KafkaSettings as Settings

log = logging.getLogger(__name__)

CONSUMED = Counter("helios_messages_consumed_total", "Messages consumed", ["service"])
PRODUCED = Counter("helios_messages_produced_total", "Messages produced", ["service", "topic"])
DEAD_LETTERS = Counter("helios_dead_letters_total", "Messages sent to a DLQ", ["service"])
BATCH_SIZE = Histogram(
    "helios_batch_size", "Messages per consumed batch", ["service"],
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000),
)
BATCH_SECONDS = Histogram("helios_batch_duration_seconds", "Batch wall time", ["service"])
OFFSET_GAPS = Counter(
    "helios_offset_gaps_total",
    "Gaps in a partition's offsets the consumer was handed, by how each ended: refetched "
    "(the records came on a re-read) or skipped (accepted after HELIOS_KAFKA_GAP_WAIT_MS)",
    ["service", "outcome"])
LAG = Gauge("helios_consumer_lag", "Consumer lag reported by the client", ["service", "partition"])

# How long a produce may keep failing with BufferError (librdkafka's local queue full)
# before the worker gives up: the same 30 s a batch gives flush() to be acknowledged. A
# queue that does not drain in that time means a broker that is not taking writes; the
# error ends the process (non-zero), so `helios up` or Kubernetes restarts it.
PRODUCE_BLOCKED_S = 30.0
PRODUCE_POLL_S = 0.05


class DeliveryError(RuntimeError):
    """Produced records were not acknowledged: the batch must not be committed."""


class ProduceBlockedError(DeliveryError):
    """The producer's local queue stayed full for ``PRODUCE_BLOCKED_S``: the broker does
    not drain it. Not retried further; the batch is not committed and the process exits."""


@dataclass(slots=True)
class Record:
    topic: str
    key: str | bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] | None = None


Handler = Callable[[Sequence[Message]], list[Record]]


# A dead letter carries the message as received, up to this many bytes: more could not be
# produced (m.MAX_MESSAGE_BYTES) and would stop the worker on every retry of the batch.
DLQ_MAX_VALUE_BYTES = 512 * 1024
H_ORIGINAL_BYTES = "dlq.original.bytes"


def dead_letter(msg: Message, reason: str, service: str) -> Record:
    """The message as received, to ``<topic>.dlq``, with why and where it came from (a
    value over DLQ_MAX_VALUE_BYTES is cut there; ``dlq.original.bytes`` says so)."""
    headers = list(msg.headers() or [])
    headers += m.DeadLetter(reason=reason[:500], source_topic=msg.topic(),
                            source_partition=msg.partition(), source_offset=msg.offset(),
                            service=service).headers()
    value = msg.value() or b""
    if len(value) > DLQ_MAX_VALUE_BYTES:
        headers.append((H_ORIGINAL_BYTES, str(len(value)).encode()))
        value = value[:DLQ_MAX_VALUE_BYTES]
    return Record(f"{msg.topic()}.dlq", msg.key(), value, headers)


class StreamWorker:
    """Runs one consumer-group member until :meth:`stop`, then flushes and leaves cleanly."""

    def __init__(
        self,
        settings: Settings,
        service: str,
        source_topic: str,
        group_id: str,
        handler: Handler,
        batch_size: int,
    ) -> None:
        self.s = settings
        self.service = service
        self.source_topic = source_topic
        self.handler = handler
        self.batch_size = batch_size
        self._stop = threading.Event()
        self.ready = threading.Event()
        conf = consumer_config(settings, group_id, f"{service}-consumer")
        conf["stats_cb"] = self._on_stats
        # its own setting: the 202 → outcome latency crosses this wait once per hop
        # (docs/operations.md: why it stays 100 ms on Tansu)
        conf["fetch.wait.max.ms"] = settings.stream_fetch_wait_max_ms
        self.consumer = Consumer(conf)
        tid = (transactional_id(group_id, socket.gethostname(), os.getpid())
               if settings.kafka_transactions else None)
        self.producer = Producer(producer_config(settings, f"{service}-producer",
                                                 transactional_id=tid))
        self.txn = Transactions(self.producer, self.consumer, service) if tid else None
        self.transactional_id = tid
        self._failed: list[str] = []
        wait = gap_wait_s(settings)
        self.gaps = (GapGuard(wait, on_gap=lambda how: OFFSET_GAPS.labels(service, how).inc())
                     if wait > 0 else None)

    def stop(self) -> None:
        self._stop.set()

    def _on_assign(self, _consumer: Consumer, parts: list[TopicPartition]) -> None:
        if self.gaps is not None:
            self.gaps.forget([(p.topic, p.partition) for p in parts])
        self.ready.set()

    def _on_revoke(self, _consumer: Consumer, parts: list[TopicPartition]) -> None:
        if self.gaps is not None:
            self.gaps.forget([(p.topic, p.partition) for p in parts])

    def _seek(self, rewind: dict[tuple[str, int], int]) -> None:
        time.sleep(REFETCH_PAUSE_S)
        for (topic, partition), offset in rewind.items():
            try:
                self.consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:  # revoked meanwhile: its new owner starts there
                log.info("seek back skipped", extra={"service": self.service,
                                                     "partition": partition,
                                                     "error": str(exc)})

    def _on_stats(self, raw: str) -> None:
        stats = orjson.loads(raw)
        topic = stats.get("topics", {}).get(self.source_topic, {})
        for part in topic.get("partitions", {}).values():
            if part.get("partition", -1) >= 0 and part.get("consumer_lag", -1) >= 0:
                LAG.labels(self.service, str(part["partition"])).set(part["consumer_lag"])

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            PUBLISH_ERRORS.inc()
            self._failed.append(f"{msg.topic()}: {err}")

    def run(self) -> None:
        if self.txn is not None:
            self.txn.init()
            log.info("transactions on", extra={"service": self.service,
                                               "transactional_id": self.transactional_id})
        self.consumer.subscribe([self.source_topic], on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_revoke)
        log.info("consuming", extra={"service": self.service, "topic": self.source_topic})
        try:
            # consume() waits until the batch is full or the timeout passes: a long timeout
            # adds that wait to every message's latency whenever traffic is below the
            # batch size per timeout, so wait briefly and take what has arrived
            wait = self.s.batch_wait_ms / 1000
            while not self._stop.is_set():
                batch = self.consumer.consume(self.batch_size, timeout=wait)
                rewind: dict[tuple[str, int], int] = {}
                if batch and self.gaps is not None:
                    batch, rewind = self.gaps.split(batch)
                if batch:
                    self._process(batch)
                if rewind:  # after the commit of what came before each gap
                    self._seek(rewind)
        finally:
            self.producer.flush(10)
            self.consumer.close()
            if self.txn is not None:
                self.txn.close()
            del self.producer  # destroy now: stops librdkafka's threads (and their logs)
            log.info("stopped", extra={"service": self.service})

    def _process(self, batch: list[Message]) -> None:
        started = time.perf_counter()
        good: list[Message] = []  # handed to the handler
        consumed: list[Message] = []  # committed once the batch's records are acknowledged
        oversized: list[Record] = []
        for msg in batch:
            err = msg.error()
            if err is None:
                consumed.append(msg)
                size = len(msg.value() or b"")
                if size > m.MAX_MESSAGE_BYTES:  # not written by Helios: poison
                    oversized.append(dead_letter(
                        msg, f"record of {size} bytes is over {m.MAX_MESSAGE_BYTES} bytes, "
                             f"the most a Helios producer writes", self.service))
                else:
                    good.append(msg)
            elif err.code() != KafkaError._PARTITION_EOF:
                log.warning("consume error", extra={"service": self.service, "error": str(err)})
        if not consumed:
            return
        CONSUMED.labels(self.service).inc(len(consumed))
        BATCH_SIZE.labels(self.service).observe(len(consumed))
        records = (self.handler(good) if good else []) + oversized
        self._failed.clear()
        per_topic: dict[str, int] = {}
        for rec in records:
            per_topic[rec.topic] = per_topic.get(rec.topic, 0) + 1
        if self.txn is not None:  # records and offsets in one transaction
            if self.txn.commit_batch(records, consumed, self._produce):
                self._count(per_topic)
                BATCH_SECONDS.labels(self.service).observe(time.perf_counter() - started)
            return
        for rec in records:
            self._produce(rec)
        self._count(per_topic)
        remaining = self.producer.flush(30)
        if remaining or self._failed:
            raise DeliveryError(
                f"{remaining} records unacknowledged, failures: {self._failed[:3]}"
            )
        self.consumer.commit(offsets=next_offsets(consumed), asynchronous=False)
        BATCH_SECONDS.labels(self.service).observe(time.perf_counter() - started)

    def _count(self, per_topic: dict[str, int]) -> None:
        for topic, n in per_topic.items():  # metrics once per batch, not per record
            PRODUCED.labels(self.service, topic).inc(n)
            if topic.endswith(".dlq"):
                DEAD_LETTERS.labels(self.service).inc(n)

    def _produce(self, rec: Record) -> None:
        deadline: float | None = None  # the clock is read only once the queue is full
        while True:
            try:
                self.producer.produce(
                    rec.topic, rec.value, rec.key, headers=rec.headers,
                    on_delivery=self._on_delivery,
                )
                return
            except BufferError:  # local queue full: let it drain, then retry, for a while
                now = time.monotonic()
                if deadline is None:
                    deadline = now + PRODUCE_BLOCKED_S
                elif now >= deadline:
                    raise ProduceBlockedError(
                        f"{self.service}: producer queue full for {PRODUCE_BLOCKED_S:g} s "
                        f"producing to topic {rec.topic!r} (the broker is not draining it); "
                        f"giving up so the service restarts"
                    ) from None
                self.producer.poll(PRODUCE_POLL_S)

