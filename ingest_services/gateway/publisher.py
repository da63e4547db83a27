"""Publishes accepted requests and hands the broker's acknowledgement back to asyncio.

librdkafka fires delivery callbacks from ``poll()``; a dedicated thread polls, collects the
acknowledgements of that poll and wakes the event loop once to resolve all their futures,
so a request is answered ``202`` only once the broker has acknowledged it (``acks=all``)
without one cross-thread wake-up per message. A full local queue raises
:class:`QueueFull` at once.

A producer the broker will not take again (a fatal error, or PRODUCER_FENCED and friends:
found by fault injection — after the broker froze long enough for messages to time out,
Tansu answered the idempotent producer's every later produce PRODUCER_FENCED, so every
request got a 503, forever) is replaced by a new one (a new producer id); what the old one
still held fails, so those requests get their 503.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from functools import partial

from confluent_kafka import KafkaError, Producer

from ingest_services.common.kafka import producer_config
from ingest_services.settings import GatewaySettings as Settings

# Errors after which this producer (its producer id and epoch) will not be accepted again:
# librdkafka does not flag them fatal for an idempotent (non-transactional) producer, yet
# Tansu answers every later produce PRODUCER_FENCED (measured: tests/integration/test_faults).
_DEAD_PRODUCER = frozenset({KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH,
                            KafkaError.UNKNOWN_PRODUCER_ID, KafkaError._FENCED,
                            KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
                            KafkaError.INVALID_PRODUCER_ID_MAPPING})


def _dead(err: KafkaError | None) -> bool:
    return err is not None and (err.fatal() or err.code() in _DEAD_PRODUCER)


class QueueFull(Exception):
    """The producer's local queue is full: the caller should answer 503."""


class BatchAck:
    """Counts acknowledgements of many messages; one wake-up when the last one lands."""

    __slots__ = ("failed", "future", "loop", "pending")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future = loop.create_future()
        self.pending = 1  # released by close(): no wake-up before every line is produced
        self.failed: dict[int, str] = {}

    def add(self) -> None:
        self.pending += 1

    def done(self, line: int, err: KafkaError | None, _msg: object) -> None:  # poll thread
        if err is not None:
            self.failed[line] = str(err)
        self.pending -= 1
        if self.pending == 0:
            self.loop.call_soon_threadsafe(_resolve, self.future, None)

    def close(self) -> None:
        self.done(-1, None, None)


def _resolve(fut: asyncio.Future, err: KafkaError | None) -> None:
    if not fut.done():
        fut.set_result(err)


class Publisher:
    def __init__(self, settings: Settings, client_id: str = "gateway") -> None:
        conf = producer_config(settings, client_id, linger_ms=settings.gateway_linger_ms)
        # A message not acknowledged within the ack timeout fails instead of lingering.
        conf["message.timeout.ms"] = int(settings.gateway_ack_timeout_s * 1000)
        conf["error_cb"] = self._on_error
        self._conf = conf
        self._fatal = threading.Event()  # set from librdkafka callbacks (poll thread)
        self.replaced = 0  # producers replaced after a fatal error (tests, metrics)
        self.producer = Producer(conf)
        self.topic = settings.topic_requests
        self.last_error: str | None = None
        self._acks: deque[tuple[asyncio.Future, KafkaError | None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="kafka-poll", daemon=True)
        self._thread.start()

    def _on_error(self, err: KafkaError) -> None:
        self.last_error = f"{time.strftime('%H:%M:%S')} {err}"
        if _dead(err):
            self._fatal.set()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)
            if self._fatal.is_set():
                self._replace_producer()
            if self._acks and self._loop is not None:  # one wake-up for this poll's acks
                self._loop.call_soon_threadsafe(self._resolve_acks)

    def _replace_producer(self) -> None:
        """Poll thread: a fresh producer for new requests; the old one's messages fail."""
        old, self.producer = self.producer, Producer(self._conf)
        self._fatal.clear()
        self.replaced += 1
        old.purge()  # queued and in-flight messages: delivery reports with errors
        old.poll(0)
        old.flush(0)

    def _acked(self, fut: asyncio.Future, err: KafkaError | None, _msg: object) -> None:
        if _dead(err):
            self._fatal.set()
        self._acks.append((fut, err))  # poll thread: just note it

    def _resolve_acks(self) -> None:  # event loop
        acks = self._acks
        while acks:
            fut, err = acks.popleft()
            if not fut.done():
                fut.set_result(err)

    async def publish(self, key: str, value: bytes) -> KafkaError | None:
        """Produce one message and wait for its ack; returns the delivery error, if any."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        fut = self._loop.create_future()
        try:
            self.producer.produce(self.topic, value, key, on_delivery=partial(self._acked, fut))
        except BufferError:
            raise QueueFull from None
        return await fut

    def _line_done(self, batch: BatchAck, line: int, err: KafkaError | None, msg: object
                   ) -> None:
        if _dead(err):
            self._fatal.set()
        batch.done(line, err, msg)

    def produce_line(self, key: str, value: bytes, batch: BatchAck, line: int) -> None:
        try:
            self.producer.produce(self.topic, value, key,
                                  on_delivery=partial(self._line_done, batch, line))
        except BufferError:
            raise QueueFull from None
        batch.add()

    def broker_reachable(self, timeout: float = 1.0) -> bool:
        try:
            md = self.producer.list_topics(self.topic, timeout=timeout)
        except Exception:
            return False
        topic = md.topics.get(self.topic)
        return bool(md.brokers) and topic is not None and topic.error is None

    def close(self, timeout: float = 10.0) -> int:
        """Flush what is queued; returns how many messages could not be delivered in time."""
        remaining = self.producer.flush(timeout)
        self._stop.set()
        self._thread.join(2)
        del self.producer  # destroy now: stops librdkafka's threads (and their reconnect logs)
        return remaining
