"""StreamWorker._produce: a full producer queue is retried for a bounded time only."""

from types import SimpleNamespace

import pytest

from ingest_services.common import stream_worker
from ingest_services.common.stream_worker import (
    DeliveryError,
    ProduceBlockedError,
    Record,
    StreamWorker,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class FullProducer:
    """A producer whose local queue is full for the first ``full_for`` produce calls
    (forever by default); poll() lets the fake clock run on by its timeout."""

    def __init__(self, clock: Clock, full_for: float = float("inf")) -> None:
        self.clock, self.full_for = clock, full_for
        self.produced: list[str] = []
        self.attempts = 0
        self.polls: list[float] = []

    def produce(self, topic, value, key=None, headers=None, on_delivery=None):
        self.attempts += 1
        if self.attempts <= self.full_for:
            raise BufferError("Local: Queue full")
        self.produced.append(topic)

    def poll(self, timeout):
        self.polls.append(timeout)
        self.clock.now += timeout
        return 0


def _worker(producer) -> StreamWorker:
    worker = StreamWorker.__new__(StreamWorker)  # no Kafka clients: only what _produce uses
    worker.service, worker.producer, worker._failed = "bidder", producer, []
    return worker


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(stream_worker, "time", SimpleNamespace(monotonic=c.monotonic))
    return c


def test_a_queue_that_never_drains_raises_after_the_bound_and_polls_meanwhile(clock):
    producer = FullProducer(clock)
    start = clock.now
    with pytest.raises(ProduceBlockedError) as exc:
        _worker(producer)._produce(Record("bid_responses", b"k", b"v"))
    assert isinstance(exc.value, DeliveryError)  # the batch is not committed either
    msg = str(exc.value)
    assert "'bid_responses'" in msg and f"{stream_worker.PRODUCE_BLOCKED_S:g} s" in msg
    assert "bidder" in msg
    waited = clock.now - start
    assert stream_worker.PRODUCE_BLOCKED_S <= waited < stream_worker.PRODUCE_BLOCKED_S + 1
    # it polled between attempts (serving delivery callbacks, letting the queue drain)
    assert producer.polls and set(producer.polls) == {stream_worker.PRODUCE_POLL_S}
    assert producer.attempts == len(producer.polls) + 1
    assert producer.produced == []


def test_a_queue_that_drains_within_the_bound_is_retried_until_produced(clock):
    producer = FullProducer(clock, full_for=20)
    _worker(producer)._produce(Record("bid_responses", b"k", b"v"))
    assert producer.produced == ["bid_responses"]
    assert len(producer.polls) == 20
