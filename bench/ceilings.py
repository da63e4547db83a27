"""Ceilings measured in the same run as the figures they bound.

A raw ASGI app (no framework, no validation, no broker) is the most any Python HTTP
endpoint can do here; a bare produce/consume loop is the most a Python pipeline stage can
move through this broker. Figures are reported as ratios against these.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer

from ingest_services.common.kafka import consumer_config, ensure_topics, producer_config
from ingest_services.settings import Settings


async def raw_asgi(scope, receive, send) -> None:
    """Reads the body and answers 202, as the gateway does minus validation and the ack."""
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 202,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", b"21")]})
    await send({"type": "http.response.body", "body": b'{"status":"accepted"}'})


def bare_produce_consume(s: Settings, payload: bytes, n: int) -> tuple[float, float]:
    """Messages/s for a bare produce (acked) and a bare group consume of ``n`` messages."""
    topic = f"bench-bare-{int(time.time() * 1000)}"
    ensure_topics(s, [topic])
    p = Producer(producer_config(s, "bench-bare"))
    t0 = time.perf_counter()
    for i in range(n):
        while True:
            try:
                p.produce(topic, payload, str(i))
                break
            except BufferError:
                p.poll(0.01)
    p.flush(60)
    produce_rate = n / (time.perf_counter() - t0)
    c = Consumer(consumer_config(s, f"bench-bare-{topic}", "bench-bare"))
    c.subscribe([topic])
    got = 0
    first = None
    deadline = time.perf_counter() + 120
    while got < n and time.perf_counter() < deadline:
        batch = c.consume(1000, 0.5)
        if batch and first is None:
            first = time.perf_counter()  # exclude the group join
        got += sum(1 for m in batch if m.error() is None)
    consume_rate = got / (time.perf_counter() - (first or time.perf_counter()))
    c.close()
    return produce_rate, consume_rate
