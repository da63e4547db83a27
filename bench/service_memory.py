"""Helios's services' memory against the messages they processed, not the clock (issue #9).

``python -m bench.service_memory [--rounds R] [--per-round N] [--idle-s S]``

The one-hour soak left the bidder growing 0.5–1 MiB per 10 minutes at 200 requests/s
(docs/reliability.md): too little over too short a run to call a leak or bounded, and a
soak cannot tell the two causes apart. This does: something kept per request (a leak)
grows with the messages processed; caches, metadata refreshes and allocator drift grow
with time or not at all. It starts a real ``helios up --no-dagster`` (temp HELIOS_HOME,
free 127.0.0.1 ports, stopped by PID; profiles seeded in Redis), then ``R`` rounds of
``N`` request envelopes produced straight to ``bid_requests`` as the gateway writes them
(``bench.run.pipeline_drain``: waited for until the auctioneer has consumed every bid),
each followed by ``S`` seconds idle. Each streaming service's RSS (psutil) is taken after
every round and after every idle pause, and fitted as MiB per million messages (the
round-end samples, after the first round's warm-up) and MiB per hour idle, next to the
soak's figure at its rate.

Prints a rich table and writes bench/results/service_memory.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import write_results
from bench.broker_memory import rss, slope
from bench.run import pipeline_drain, start_stack, stop_stack, synthetic_bodies
from ingest_services.settings import load_settings

SERVICES = ("bidder", "auctioneer", "profiles", "gateway", "broker")
SOAK_RATE = 200  # the one-hour soak's requests/s: growth per hour there = per million × 0.72
console = Console()


def rss_mib(pids: dict[str, int]) -> dict[str, float | None]:
    """Each process's RSS with its children (a gateway's workers), ``broker_memory.rss``."""
    return {name: rss(pid) for name, pid in pids.items()}


def run(rounds: int, per_round: int, idle_s: float, home: Path,
        batch_size: int | None = None) -> dict:
    extra = {} if batch_size is None else {"HELIOS_BIDDER_BATCH_SIZE": str(batch_size),
                                           "HELIOS_AUCTIONEER_BATCH_SIZE": str(batch_size)}
    proc, state, _env = start_stack(home, extra)
    try:
        pids = {k: v for k, v in state["processes"].items() if k in SERVICES}
        eps = state["endpoints"]
        s = load_settings(kafka_bootstrap=eps["kafka_bootstrap"])
        from ingest_services.profiles import store
        from ingest_services.profiles.seed import load_into_redis

        load_into_redis(store.connect(eps["redis_url"]), 10_000, seed=7)
        bodies = synthetic_bodies(4000)
        samples = [{"round": 0, "phase": "start", "t": 0.0, "messages": 0,
                    "rss": rss_mib(pids)}]
        t0 = time.monotonic()
        done = 0
        for r in range(1, rounds + 1):
            drain = pipeline_drain(state, s, bodies, per_round)
            if "error" in drain:
                raise SystemExit(f"round {r}: {drain['error']}")
            done += per_round
            samples.append({"round": r, "phase": "drained", "t": time.monotonic() - t0,
                            "messages": done, "rps": round(drain["rps"]),
                            "rss": rss_mib(pids)})
            console.print(f"round {r}: {done:,} messages, {drain['rps']:,.0f}/s; RSS "
                          + ", ".join(f"{k} {v:.1f}" for k, v in samples[-1]["rss"].items()
                                      if v is not None))
            time.sleep(idle_s)
            samples.append({"round": r, "phase": "idle", "t": time.monotonic() - t0,
                            "messages": done, "rss": rss_mib(pids)})
        return {"rounds": rounds, "per_round": per_round, "idle_s": idle_s,
                "batch_size": batch_size, "samples": samples}
    finally:
        stop_stack(proc)


def figures(res: dict) -> dict[str, dict]:
    rounds = [x for x in res["samples"] if x["phase"] == "drained"]
    drained = rounds[1:]  # after round 1, the warm-up
    out: dict[str, dict] = {}
    for name in SERVICES:
        by_msg = [(x["messages"] / 1e6, x["rss"][name]) for x in drained
                  if x["rss"].get(name) is not None]
        # idle drift: each pause's change, per hour of pause
        idle = []
        for a, b in zip(res["samples"], res["samples"][1:], strict=False):
            if a["phase"] == "drained" and b["phase"] == "idle" and a["round"] > 1 and \
                    a["rss"].get(name) is not None and b["rss"].get(name) is not None:
                idle.append((b["rss"][name] - a["rss"][name]) / ((b["t"] - a["t"]) / 3600))
        first = res["samples"][0]["rss"].get(name)
        last = res["samples"][-1]["rss"].get(name)
        per_million = slope(by_msg)
        out[name] = {"start_mib": first, "end_mib": last,
                     "after_round1_mib": rounds[0]["rss"].get(name) if rounds else None,
                     "max_mib": max((x["rss"][name] for x in rounds
                                     if x["rss"].get(name) is not None), default=None),
                     "mib_per_million_messages": per_million,
                     "mib_per_hour_idle": sum(idle) / len(idle) if idle else None,
                     "mib_per_hour_at_soak_rate": per_million * SOAK_RATE * 3600 / 1e6}
    return out


def table(figs: dict[str, dict], res: dict) -> Table:
    total = res["rounds"] * res["per_round"]
    batch = res.get("batch_size") or "default"
    t = Table(title=f"Services' RSS over {total:,} messages in {res['rounds']} rounds "
                    f"(+{res['idle_s']:.0f} s idle after each; batch size {batch})")
    for col in ("process", "start", "after round 1", "max after a round", "end",
                "MiB per million messages",
                f"= MiB/h at {SOAK_RATE} req/s", "MiB/h idle"):
        t.add_column(col, justify="left" if col == "process" else "right")

    def f(v: float | None, unit: str = "") -> str:
        return "—" if v is None else f"{v:,.1f}{unit}"

    for name, x in figs.items():
        t.add_row(name, f(x["start_mib"]), f(x["after_round1_mib"]), f(x["max_mib"]),
                  f(x["end_mib"]),
                  f(x["mib_per_million_messages"]), f(x["mib_per_hour_at_soak_rate"]),
                  f(x["mib_per_hour_idle"]))
    return t


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8, help="rounds of messages")
    ap.add_argument("--per-round", type=int, default=200_000, help="messages per round")
    ap.add_argument("--idle-s", type=float, default=30.0, help="idle seconds after a round")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="HELIOS_BIDDER_BATCH_SIZE and HELIOS_AUCTIONEER_BATCH_SIZE: 1 makes "
                         "every message a batch, to find growth per batch (poll, gRPC call, "
                         "commit) rather than per message")
    a = ap.parse_args(argv)
    if a.rounds < 3 or a.per_round < 1000:
        ap.error("--rounds must be ≥ 3 and --per-round ≥ 1000 (round 1 is the warm-up)")
    with tempfile.TemporaryDirectory(prefix="helios-svcmem-") as tmp:
        res = run(a.rounds, a.per_round, a.idle_s, Path(tmp), a.batch_size)
    figs = figures(res)
    console.print(table(figs, res))
    path = write_results("service_memory.json", {"figures": figs, **res})
    console.print(f"results: {path}")


if __name__ == "__main__":
    main()
