"""``helios load``: a steady open-loop request rate against the gateway.

Open loop means requests are sent on schedule whether or not earlier ones have been
answered, and latency is measured from the scheduled send time, so a slow gateway shows
up as latency instead of silently lowering the offered rate (no coordinated omission).
Bounded in count and time: at most ``rate × duration`` requests, at most ``in_flight``
outstanding, and a hard stop at ``duration`` + the drain timeout.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

from helios_pipeline.http_load import Pool
from helios_pipeline.synth import make_request


@dataclass
class LoadReport:
    target_rate: float
    duration_s: float
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    errors: int = 0
    skipped: int = 0  # not sent: too many requests already outstanding
    statuses: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    achieved_rate: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    xs = sorted(samples)

    def pick(q: float) -> float:
        return round(xs[min(len(xs) - 1, int(q * len(xs)))], 3)

    return {"p50": pick(0.50), "p90": pick(0.90), "p99": pick(0.99), "max": round(xs[-1], 3)}


def read_corpus(directory: Path) -> list[bytes]:
    files = sorted(directory.glob("*.json"))
    if not files:
        raise ValueError(f"no *.json files in {directory}")
    return [f.read_bytes() for f in files]


class Traffic:
    """Request bodies: synthetic ones with unique ids, interleaved with corpus files."""

    def __init__(self, users: int, seed: int, corpus: list[bytes], corpus_share: float = 0.02):
        rng = random.Random(seed)
        self.templates = [make_request(rng, "", users) for _ in range(2000)]
        self.corpus = corpus
        self.corpus_share = corpus_share if corpus else 0.0
        self.prefix = f"load-{seed}-{int(time.time())}"

    def body(self, i: int) -> bytes:
        share = self.corpus_share
        if share and int((i + 1) * share) > int(i * share):  # exactly `share` of the bodies
            return self.corpus[int(i * share) % len(self.corpus)]
        req = self.templates[i % len(self.templates)]
        req["id"] = f"{self.prefix}-{i}"
        return orjson.dumps(req)


async def run_load(
    url: str,
    rate: float,
    duration: float,
    traffic: Traffic,
    connections: int = 64,
    in_flight: int = 4096,
    drain_timeout: float = 15.0,
    progress: Callable[[int, int], None] | None = None,
) -> LoadReport:
    report = LoadReport(target_rate=rate, duration_s=duration)
    total = int(rate * duration)
    pool = Pool(url, connections)
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    pending: set[asyncio.Task] = set()

    async def one(i: int, scheduled: float) -> None:
        try:
            status, _ = await pool.post("/bid", traffic.body(i))
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            statuses["error"] += 1
            return
        latencies.append((time.perf_counter() - scheduled) * 1000)
        statuses[str(status)] += 1

    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        now = time.perf_counter()
        due = min(total, int((now - t0) * rate) + 1)
        while sent < due:
            scheduled = t0 + sent / rate
            if len(pending) >= in_flight:
                report.skipped += 1
            else:
                task = asyncio.create_task(one(sent, scheduled))
                pending.add(task)
                task.add_done_callback(pending.discard)
            sent += 1
        if progress:
            progress(sent, total)
        await asyncio.sleep(0.005)
    if pending:
        await asyncio.wait(pending, timeout=drain_timeout)
    elapsed = time.perf_counter() - t0
    for task in pending:
        task.cancel()
    pool.close()
    report.sent = sent - report.skipped
    report.statuses = dict(statuses)
    report.accepted = statuses.get("202", 0)
    report.rejected = sum(v for k, v in statuses.items() if k.startswith("4"))
    report.errors = statuses.get("error", 0) + sum(
        v for k, v in statuses.items() if k.startswith("5")
    )
    report.latency_ms = percentiles(latencies)
    report.achieved_rate = round(report.accepted / elapsed, 1) if elapsed else 0.0
    return report


async def send_files(url: str, files: list[Path]) -> dict[str, int]:
    """POST each file once; returns status counts (used by the demo for the shared corpus)."""
    pool = Pool(url, 1)
    statuses: Counter[str] = Counter()
    try:
        for f in files:
            status, body = await pool.post("/bid", f.read_bytes())
            statuses[str(status)] += 1
            if status != 202:
                statuses[f"{f.name}: {body[:200].decode(errors='replace')}"] += 1
    finally:
        pool.close()
    return dict(statuses)
