"""``python -m bench.two_producers``: does a consumer that reads while two producers write
into the same partitions of the embedded broker (Tansu) receive every record?

Why: issue #10's bench runs with two gateway workers (two producers into the same
partitions) lost 1 and 3 of ~206,000 requests on Tansu: the records were on the topic, but
the bidder's consumer never received them and committed past them. This is the minimal
reproducer, without Helios's services: a real Tansu on 127.0.0.1, ``--producers``
processes each producing ``--messages`` numbered records to a ``--partitions`` topic at
the same time with Helios's own producer settings, one consumer reading live with the
bidder's consumer settings (a group, read_committed, manual commits), then a
fresh consumer reading the whole topic from the start. It reports, per run, records
produced (acknowledged), received live, on the topic afterwards, and the offsets the live
consumer skipped (gaps in what it was handed, per partition). A command, not a CI test.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from helios_pipeline.stack.servers import start_tansu
from ingest_services.common.kafka import consumer_config, producer_config
from ingest_services.settings import Settings


def produce(bootstrap: str, topic: str, who: int, count: int, acked) -> None:
    p = Producer(producer_config(Settings(kafka_bootstrap=bootstrap), f"p{who}"))
    ok = 0

    def done(err, _msg) -> None:
        nonlocal ok
        if err is None:
            ok += 1

    for i in range(count):
        while True:
            try:
                p.produce(topic, key=str(i % 64).encode(), value=f"{who}:{i}".encode(),
                          on_delivery=done)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    p.flush(60)
    acked.put(ok)


def read(bootstrap: str, topic: str, group: str, expect: int, live: bool,
         timeout: float) -> tuple[set[str], dict[int, list[int]]]:
    c = Consumer(consumer_config(Settings(kafka_bootstrap=bootstrap), group, group))
    c.subscribe([topic])
    seen: set[str] = set()
    offsets: dict[int, list[int]] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < expect and time.monotonic() < deadline:
        batch = c.consume(1000, 0.5)
        for m in batch:
            if m.error():
                continue
            seen.add(m.value().decode())
            offsets.setdefault(m.partition(), []).append(m.offset())
        if batch and live:
            c.commit(asynchronous=False)
    c.close()
    return seen, offsets


def gaps(offsets: dict[int, list[int]]) -> dict[int, list[int]]:
    out = {}
    for part, offs in offsets.items():
        offs = sorted(set(offs))
        missing = sorted(set(range(offs[0], offs[-1] + 1)) - set(offs))
        if missing:
            out[part] = missing
    return out


def run_once(bootstrap: str, producers: int, messages: int, partitions: int) -> dict:
    topic = f"two-producers-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(30)
    expect = producers * messages
    acked: mp.Queue = mp.Queue()
    procs = [mp.Process(target=produce, args=(bootstrap, topic, w, messages, acked))
             for w in range(producers)]
    live_result: dict = {}

    import threading

    def live() -> None:
        live_result["v"] = read(bootstrap, topic, "live", expect, True, 120)

    t = threading.Thread(target=live)
    t.start()
    time.sleep(1.0)  # the live consumer joins first, as the bidder would be running
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    total_acked = sum(acked.get() for _ in procs)
    t.join()
    live_seen, live_offsets = live_result["v"]
    after_seen, _ = read(bootstrap, topic, f"after-{uuid.uuid4().hex[:6]}", expect, False, 60)
    return {"acked": total_acked, "live": len(live_seen),
            "on_topic": len(after_seen), "never_delivered_live": len(after_seen - live_seen),
            "live_gaps": gaps(live_offsets)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--producers", type=int, default=2)
    ap.add_argument("--messages", type=int, default=50_000, help="per producer")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="two-producers-"))
    server = start_tansu(tmp)
    try:
        bootstrap = f"127.0.0.1:{server.port}"
        for r in range(args.runs):
            res = run_once(bootstrap, args.producers, args.messages, args.partitions)
            gap_count = sum(len(v) for v in res["live_gaps"].values())
            print(f"run {r + 1}: producers={args.producers} acked={res['acked']} "
                  f"live={res['live']} "
                  f"on_topic={res['on_topic']} never_delivered_live="
                  f"{res['never_delivered_live']} skipped_offsets={gap_count} "
                  f"{dict(list(res['live_gaps'].items())[:3]) if gap_count else ''}",
                  flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
