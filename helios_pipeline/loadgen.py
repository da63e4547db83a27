"""``helios load``: a steady open-loop request rate against the gateway.

Open loop means requests are sent on schedule whether or not earlier ones have been
answered, and latency is measured from the scheduled send time, so a slow gateway shows
up as latency instead of silently lowering the offered rate (no coordinated omission).
Bounded in count and time: at most the schedule's total (``rate × duration`` when flat)
requests, at most ``in_flight`` outstanding, and a hard stop at ``duration`` + the drain timeout.

The rate is flat by default (exactly ``rate × duration`` requests). ``diurnal`` opts in to
the 24-hour curve of :func:`diurnal_factor` (docs/traffic.md): ``"clock"`` follows it at the
current UTC time of day, ``"day"`` plays one whole day compressed into ``duration`` (mean
rate ``rate``, so still ``rate × duration`` requests, give or take one).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

from helios_pipeline.http_load import Pool
from helios_pipeline.synth import Users, generate, make_request, world

__all__ = ["LoadReport", "Schedule", "Traffic", "diurnal_factor", "make_request",
           "percentiles", "read_corpus", "run_load", "send_files"]


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
    """Request bodies: synthetic ones with unique ids, interleaved with corpus files.

    Each body is a pure function of ``(seed, i)``: bodies are drawn in blocks of
    ``BLOCK`` requests, each block from its own ``random.Random(seed, block)``, so there is
    no template cycle and ``body(i)`` does not depend on the order of the calls. Blocks are
    small so that drawing one (a few ms) does not stall the send loop noticeably.
    """

    BLOCK = 256

    def __init__(self, users: int, seed: int, corpus: list[bytes], corpus_share: float = 0.02):
        self.users = Users(users, salt=seed)
        self.world = world()
        self.seed = seed
        self.corpus = corpus
        self.corpus_share = corpus_share if corpus else 0.0
        self.prefix = f"load-{seed}-{int(time.time())}"
        self._blocks: dict[int, list[dict]] = {}
        self._block(0)  # build the world and the first block before the clock starts

    def _block(self, b: int) -> list[dict]:
        block = self._blocks.get(b)
        if block is None:
            rng = random.Random(self.seed * 1_000_003 + b)
            block = [generate(rng, "", self.users, self.world) for _ in range(self.BLOCK)]
            if len(self._blocks) >= 8:  # keep a few: calls come roughly in order
                del self._blocks[min(self._blocks)]
            self._blocks[b] = block
        return block

    def request(self, i: int) -> dict:
        """The i-th synthetic request (a fresh top-level dict; nested objects are shared)."""
        req = self._block(i // self.BLOCK)[i % self.BLOCK].copy()
        req["id"] = f"{self.prefix}-{i}"
        return req

    def body(self, i: int) -> bytes:
        share = self.corpus_share
        if share and int((i + 1) * share) > int(i * share):  # exactly `share` of the bodies
            return self.corpus[int(i * share) % len(self.corpus)]
        return orjson.dumps(self.request(i))


DIURNAL_PEAK_UTC = 20.0  # the evening peak of the main market (docs/traffic.md)


def diurnal_factor(hour: float, peak: float = DIURNAL_PEAK_UTC) -> float:
    """The request rate at ``hour`` (0..24) relative to the daily mean (mean exactly 1).

    An evening peak (~1.6× at ``peak``), a night trough (~0.4× about nine hours before it)
    and a lunchtime shoulder: a daily and a half-daily harmonic.
    """
    x = 2 * math.pi * (hour - peak) / 24.0
    return 1.0 + 0.45 * math.cos(x) + 0.15 * math.cos(2 * x + 2.0)


class Schedule:
    """When each request is due: flat, or following :func:`diurnal_factor`.

    ``count(t)`` is how many requests are due ``t`` seconds into the run; ``at(k)`` is the
    scheduled time of request ``k`` (its inverse), from which latency is measured.
    """

    def __init__(self, rate: float, duration: float, diurnal: str | None = None,
                 start_hour: float | None = None, steps: int = 4096):
        if diurnal not in (None, "clock", "day"):
            raise ValueError(f"diurnal must be None, 'clock' or 'day', not {diurnal!r}")
        self.rate, self.duration, self.diurnal = rate, duration, diurnal
        if diurnal is None:
            self.total = int(rate * duration)
            return
        if start_hour is None:
            now = time.gmtime()
            start_hour = now.tm_hour + now.tm_min / 60 + now.tm_sec / 3600
        # hours of the day per second of the run
        speed = 24.0 / duration if diurnal == "day" else 1 / 3600
        dt = duration / steps
        self.dt = dt
        cum = [0.0]
        for j in range(steps):
            h = (start_hour + (j + 0.5) * dt * speed) % 24.0
            cum.append(cum[-1] + rate * diurnal_factor(h) * dt)
        self.cum = cum
        self.total = round(cum[-1])

    def count(self, t: float) -> int:
        if self.diurnal is None:
            return min(self.total, int(t * self.rate) + 1)
        if t >= self.duration:
            return self.total
        j = int(t / self.dt)
        a, b = self.cum[j], self.cum[j + 1]
        return min(self.total, int(a + (b - a) * (t / self.dt - j)) + 1)

    def at(self, k: int) -> float:
        if self.diurnal is None:
            return k / self.rate
        from bisect import bisect_right

        j = max(0, min(len(self.cum) - 2, bisect_right(self.cum, k) - 1))
        a, b = self.cum[j], self.cum[j + 1]
        return (j + ((k - a) / (b - a) if b > a else 0.0)) * self.dt


async def run_load(
    url: str,
    rate: float,
    duration: float,
    traffic: Traffic,
    connections: int = 64,
    in_flight: int = 4096,
    drain_timeout: float = 15.0,
    progress: Callable[[int, int], None] | None = None,
    diurnal: str | None = None,
    batch: int = 1,
) -> LoadReport:
    """Send ``traffic`` to ``url`` at ``rate`` requests per second (the mean rate when
    ``diurnal`` is ``"clock"`` or ``"day"``: see :class:`Schedule`).

    ``batch`` > 1 sends NDJSON bodies of ``batch`` requests to ``/bids`` (how a bulk
    integration sends) instead of one request per ``POST /bid``: a body leaves when its last
    request is due, and its latency is measured from then. The report still counts requests
    (lines): accepted, rejected (4xx per line) and errors (lines the broker did not take, or
    whole bodies lost); ``in_flight`` then bounds outstanding bodies."""
    if batch < 1:
        raise ValueError(f"batch must be ≥ 1, not {batch}")
    report = LoadReport(target_rate=rate, duration_s=duration)
    schedule = Schedule(rate, duration, diurnal)
    total = schedule.total
    pool = Pool(url, connections)
    statuses: Counter[str] = Counter()
    lines: Counter[str] = Counter()  # batch mode: per request line
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

    async def many(first: int, n: int, scheduled: float) -> None:
        body = b"\n".join(traffic.body(i) for i in range(first, first + n))
        try:
            status, payload = await pool.post("/bids", body, b"application/x-ndjson")
            answer = orjson.loads(payload) if status in (200, 503) else {}
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            statuses["error"] += 1
            lines["error"] += n
            return
        latencies.append((time.perf_counter() - scheduled) * 1000)
        statuses[str(status)] += 1
        if "accepted" not in answer:  # e.g. 413: the whole body refused
            lines["rejected" if 400 <= status < 500 else "error"] += n
            return
        lines["accepted"] += answer["accepted"]
        lines["rejected"] += len(answer.get("rejected", []))
        lines["error"] += len(answer.get("failed", []))

    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        now = time.perf_counter()
        due = schedule.count(now - t0)
        while sent < due and (batch == 1 or due - sent >= batch or due == total):
            n = min(batch, due - sent)
            scheduled = t0 + schedule.at(sent + n - 1)
            if len(pending) >= in_flight:
                report.skipped += n
            else:
                task = asyncio.create_task(one(sent, scheduled) if batch == 1
                                           else many(sent, n, scheduled))
                pending.add(task)
                task.add_done_callback(pending.discard)
            sent += n
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
    if batch == 1:
        report.accepted = statuses.get("202", 0)
        report.rejected = sum(v for k, v in statuses.items() if k.startswith("4"))
        report.errors = statuses.get("error", 0) + sum(
            v for k, v in statuses.items() if k.startswith("5")
        )
    else:
        report.accepted, report.rejected = lines["accepted"], lines["rejected"]
        report.errors = lines["error"]
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
