"""Helios benchmark: `make bench` (or `python -m bench.run --help`).

Starts the embedded stack on free ports, measures each figure next to a ceiling measured
in the same invocation, prints a table and writes bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import psutil
from rich.console import Console
from rich.table import Table

from bench import write_results
from bench.ceilings import bare_produce_consume
from helios_pipeline.http_load import Pool
from helios_pipeline.loadgen import Traffic, percentiles, run_load
from helios_pipeline.stack import probes
from helios_pipeline.synth import make_request
from ingest_services.settings import load_settings

console = Console()
PORTS = ("KAFKA_PORT", "REDIS_PORT", "PROFILE_PORT", "GATEWAY_PORT", "BIDDER_METRICS_PORT",
         "AUCTIONEER_METRICS_PORT", "PROFILE_METRICS_PORT", "API_PORT")


def start_stack(home: Path) -> tuple[subprocess.Popen, dict, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELIOS_")}
    env["HELIOS_HOME"] = str(home)
    env["HELIOS_LOG_LEVEL"] = "WARNING"
    env["HELIOS_DAGSTER"] = "false"  # measure the streaming half alone
    for var in PORTS:
        env[f"HELIOS_{var}"] = str(probes.free_port())
    home.mkdir(parents=True, exist_ok=True)
    (home / "stack.json").unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "helios_pipeline.cli", "up"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(home / "up.err", "w"))  # noqa: SIM115
    ok = probes.wait_until(lambda: _state(home).get("status") == "ready", 120, 0.2)
    if not ok:
        proc.terminate()
        raise SystemExit(f"stack did not start; see {home}/up.err")
    return proc, _state(home), env


def _state(home: Path) -> dict:
    try:
        return json.loads((home / "stack.json").read_text())
    except (OSError, ValueError):
        return {}


def serve_http(argv: list[str], port: int, env: dict) -> subprocess.Popen:
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not probes.wait_until(lambda: probes.tcp_open(port), 30):
        proc.terminate()
        raise SystemExit(f"server {argv} did not start")
    time.sleep(0.5)
    return proc


async def closed_loop(url: str, bodies: list[bytes], concurrency: int, seconds: float,
                      path: str = "/bid", ctype: bytes = b"application/json") -> dict:
    """`concurrency` clients sending back to back for `seconds`; latency per request."""
    pool = Pool(url, concurrency)
    lat: list[float] = []
    codes: dict[int, int] = {}
    stop = time.perf_counter() + seconds

    async def client(k: int) -> None:
        i = k
        while time.perf_counter() < stop:
            t = time.perf_counter()
            status, _ = await pool.post(path, bodies[i % len(bodies)], ctype)
            lat.append((time.perf_counter() - t) * 1000)
            codes[status] = codes.get(status, 0) + 1
            i += concurrency

    t0 = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(concurrency)))
    elapsed = time.perf_counter() - t0
    pool.close()
    return {"rps": len(lat) / elapsed, "codes": codes, **percentiles(lat)}


def synthetic_bodies(n: int, users: int = 10_000) -> list[bytes]:
    rng = random.Random(5)
    return [orjson.dumps(make_request(rng, f"bench-{i}", users)) for i in range(n)]


def ndjson_batches(bodies: list[bytes], per_batch: int) -> list[bytes]:
    return [b"\n".join(bodies[i:i + per_batch]) for i in range(0, len(bodies), per_batch)]


class RssSampler(threading.Thread):
    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.procs = {n: psutil.Process(p) for n, p in pids.items()}
        self.peak = dict.fromkeys(pids, 0)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            for name, proc in self.procs.items():
                try:
                    rss = proc.memory_info().rss
                    for child in proc.children(recursive=True):
                        rss += child.memory_info().rss
                except psutil.Error:
                    continue
                self.peak[name] = max(self.peak[name], rss)


def validation_cost(examples: Path, baseline: Path | None = None, rounds: int = 15,
                    per_timing_s: float = 0.05) -> dict[str, dict]:
    """µs per request over the OpenRTB examples (Settings.examples_dir): ``orjson.loads``
    alone (parse-only ceiling), ``openrtb.decode`` (the contract: parse + validate) and the
    gateway's ``core.check`` (what /bid does per body). Best of ``rounds`` interleaved
    timings. ``baseline``: a module file with ``validate_bid_request(obj)`` (e.g. the
    validator before issue #6, ``git show d312248:ingest_services/gateway/validation.py``),
    also measured as ``orjson.loads`` + it, on the same bodies in this process."""
    from ingest_services.contracts import openrtb
    from ingest_services.gateway import core

    bodies = [p.read_bytes() for p in sorted(examples.glob("*.json"))]
    if not bodies:
        raise SystemExit(f"no *.json in {examples} (set HELIOS_EXAMPLES_DIR)")
    for b in bodies:  # the valid path is what is measured
        if core.check(b)[0] is None:
            raise SystemExit(f"an example is rejected: {b[:80]!r}")
    fns = {"orjson.loads (parse only)": orjson.loads,
           "openrtb.decode (parse + validate)": openrtb.decode,
           "gateway core.check (/bid, per body)": core.check}
    if baseline is not None:
        spec = importlib.util.spec_from_file_location("bench_baseline_validation", baseline)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # dataclasses look their module up
        spec.loader.exec_module(mod)
        validate = mod.validate_bid_request
        if any(validate(orjson.loads(b)) for b in bodies):
            raise SystemExit(f"{baseline} rejects an example")
        fns[f"orjson.loads + validate_bid_request ({baseline.name})"] = (
            lambda b: validate(orjson.loads(b)))
    passes: dict[str, int] = {}
    for name, fn in fns.items():  # warm up, then size each timing to ~per_timing_s
        t = time.perf_counter()
        for b in bodies:
            fn(b)
        passes[name] = max(1, int(per_timing_s / (time.perf_counter() - t)))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            n = passes[name]
            t = time.perf_counter()
            for _ in range(n):
                for b in bodies:
                    fn(b)
            samples[name].append((time.perf_counter() - t) / (n * len(bodies)) * 1e6)
    ceiling = min(samples["orjson.loads (parse only)"])
    return {name: {"us": min(v), "us_median": sorted(v)[len(v) // 2],
                   "x_parse": min(v) / ceiling, "bodies": len(bodies)}
            for name, v in samples.items()}


def validation_table(cost: dict[str, dict], examples: Path) -> Table:
    n = next(iter(cost.values()))["bodies"]
    table = Table(title=f"Validation cost per request: {n} bodies from {examples}, best of "
                        "interleaved timings, in this process")
    for col in ("figure", "µs / request", "median", "× parse-only ceiling"):
        table.add_column(col)
    for name, c in cost.items():
        table.add_row(name, f"{c['us']:.2f}", f"{c['us_median']:.2f}", f"{c['x_parse']:.2f}×")
    return table


def outcome_latencies(settings, since_ms: int) -> list[float]:
    """202 → outcome published: outcome decided_at minus gateway received_at (ms)."""
    from helios_pipeline.audit import Auditor

    lat: list[float] = []

    def note(o: dict) -> None:
        if (o.get("received_at") or 0) >= since_ms:
            lat.append(o["decided_at"] - o["received_at"])

    auditor = Auditor(settings, on_outcome=note)
    auditor.drain(120)
    auditor.close()
    return lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=10, help="per HTTP measurement")
    ap.add_argument("--e2e-seconds", type=float, default=60)
    ap.add_argument("--e2e-rate", type=float, default=20_000)
    ap.add_argument("--home", type=Path, default=Path(".helios/bench"))
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--validation-only", action="store_true",
                    help="only the validation cost stage (no servers)")
    ap.add_argument("--validation-baseline", type=Path, metavar="FILE",
                    help="a module file defining validate_bid_request(obj), measured as "
                         "orjson.loads + it next to the contract")
    args = ap.parse_args()

    rows: list[tuple[str, str, str, str]] = []
    results: dict = {}
    # validation cost per request first, in this process, before any server competes
    examples = load_settings().examples_dir
    console.print(f"validation cost per request over {examples}…")
    cost = validation_cost(examples, args.validation_baseline)
    results["validation_us"] = cost
    console.print(validation_table(cost, examples))
    ceiling = cost["orjson.loads (parse only)"]["us"]
    for name, c in cost.items():
        if not name.startswith("orjson.loads (parse"):
            rows.append((f"validation: {name}", f"{c['us']:.2f} µs/request",
                         f"orjson.loads {ceiling:.2f} µs ({c['x_parse']:.1f}×)", ""))
    if args.validation_only:
        write_results("validation.json", results)
        return
    proc, state, env = start_stack(args.home)
    eps = state["endpoints"]
    s = load_settings(kafka_bootstrap=eps["kafka_bootstrap"])
    from ingest_services.profiles import store
    from ingest_services.profiles.seed import load_into_redis

    load_into_redis(store.connect(eps["redis_url"]), 10_000, seed=7)
    bodies = synthetic_bodies(4000)
    servers: list[subprocess.Popen] = []
    paused: list[psutil.Process] = []
    try:
        # latency 202 → outcome at 1,000 requests/s, first: on a quiet pipeline
        console.print("latency 202 → outcome at 1,000 req/s…")
        since = int(time.time() * 1000)
        quiet_rss = RssSampler({k: v for k, v in state["processes"].items()
                                if k in ("gateway", "bidder", "auctioneer", "profiles")})
        quiet_rss.start()
        asyncio.run(run_load(eps["gateway_url"], 1000, args.seconds, Traffic(10_000, 3, [])))
        lat = percentiles(outcome_latencies(s, since))
        quiet_rss.stop.set()
        results["rss_peak_mib_at_1000"] = {k: v / 2**20 for k, v in quiet_rss.peak.items()}
        results["outcome_latency_ms"] = lat
        rows.append(("202 → outcome p99 @ 1,000 req/s", f"{lat.get('p99', float('nan')):.0f} ms",
                     f"p50 {lat.get('p50', float('nan')):.0f} ms", "≤ 250 ms"))
        for name, peak in quiet_rss.peak.items():
            rows.append((f"RSS peak {name} @ 1,000 req/s", f"{peak / 2**20:.0f} MiB", "",
                         "≤ 100 MiB"))
        gw_url = eps["gateway_url"]
        console.print("ceilings: bare produce and consume…")
        prod, cons = bare_produce_consume(s, bodies[0], 200_000)
        if not args.skip_e2e:
            console.print(f"end to end: NDJSON at {args.e2e_rate:,.0f} req/s for "
                          f"{args.e2e_seconds:.0f} s…")
            sampler = RssSampler({k: v for k, v in state["processes"].items()
                                  if k in ("gateway", "bidder", "auctioneer", "profiles")})
            sampler.start()
            e2e = asyncio.run(offered_ndjson(gw_url, bodies, args.e2e_rate, args.e2e_seconds))
            from helios_pipeline.audit import Auditor

            t0 = time.perf_counter()
            auditor = Auditor(s)
            rep = auditor.drain(300)
            auditor.close()
            sampler.stop.set()
            results["e2e"] = {**e2e, "audit": rep, "rss_peak_mib": {
                k: v / 2**20 for k, v in sampler.peak.items()}}
            rows.append(("end to end accepted", f"{e2e['accepted_per_s']:,.0f} req/s",
                         f"{cons:,.0f} msg/s bare consume", "≥ 20,000 req/s"))
            rows.append(("end to end audit", f"missing {rep['missing']}, duplicated "
                         f"{rep['duplicated']}", f"drained: {rep['drained']} "
                         f"(+{time.perf_counter() - t0:.0f} s to drain)", "0 / 0"))
            for name, peak in sampler.peak.items():
                rows.append((f"RSS peak {name} @ 20,000 req/s", f"{peak / 2**20:.0f} MiB", "",
                             "(context)"))
        # The HTTP figures measure the gateway: pause the pipeline's consumers meanwhile so
        # they do not compete for the 2 cores (they resume from their commits afterwards;
        # the end-to-end stage below runs everything together).
        paused = [psutil.Process(state["processes"][k]) for k in ("bidder", "auctioneer")]
        for p in paused:
            p.suspend()
        raw_port = probes.free_port()
        servers.append(serve_http([sys.executable, "-m", "uvicorn", "bench.ceilings:raw_asgi",
                                   "--port", str(raw_port), "--log-level", "warning",
                                   "--no-access-log"], raw_port, env))
        raw_url = f"http://127.0.0.1:{raw_port}"
        for c in (1, 8, 64):
            console.print(f"gateway /bid closed loop, concurrency {c}…")
            base = asyncio.run(closed_loop(raw_url, bodies, c, args.seconds))
            got = asyncio.run(closed_loop(gw_url, bodies, c, args.seconds))
            results[f"bid_c{c}"] = {"gateway": got, "raw_asgi": base}
            rows.append((f"/bid p99 @ concurrency {c}", f"{got['p99']:.2f} ms",
                         f"{base['p99']:.2f} ms raw ASGI", "≤ 10 ms"))
            rows.append((f"/bid throughput @ concurrency {c}", f"{got['rps']:,.0f} req/s",
                         f"{base['rps']:,.0f} req/s raw ASGI ({got['rps'] / base['rps']:.0%})",
                         ""))
        # two gateway workers, concurrency 100 (the target's setting)
        gw2_port = probes.free_port()
        servers.append(serve_http([sys.executable, "-m", "helios_pipeline.cli", "serve",
                                   "gateway", "--port", str(gw2_port), "--workers", "2"],
                                  gw2_port,
                                  {**env, "HELIOS_KAFKA_BOOTSTRAP": eps["kafka_bootstrap"]}))
        raw2_port = probes.free_port()
        servers.append(serve_http([sys.executable, "-m", "uvicorn", "bench.ceilings:raw_asgi",
                                   "--port", str(raw2_port), "--workers", "2", "--log-level",
                                   "warning", "--no-access-log"], raw2_port, env))
        console.print("gateway /bid, 2 workers, concurrency 100…")
        base = asyncio.run(closed_loop(f"http://127.0.0.1:{raw2_port}", bodies, 100, args.seconds))
        got = asyncio.run(closed_loop(f"http://127.0.0.1:{gw2_port}", bodies, 100, args.seconds))
        results["bid_c100_w2"] = {"gateway": got, "raw_asgi": base}
        rows.append(("/bid throughput, 2 workers, c=100", f"{got['rps']:,.0f} req/s",
                     f"{base['rps']:,.0f} req/s raw ASGI ({got['rps'] / base['rps']:.0%})",
                     "≥ 15,000 req/s"))
        # NDJSON
        console.print("gateway /bids NDJSON…")
        batches = ndjson_batches(bodies, 1000)
        got = asyncio.run(closed_loop(gw_url, batches, 4, args.seconds, "/bids",
                                      b"application/x-ndjson"))
        ndjson_rate = got["rps"] * 1000
        results["ndjson"] = {"requests_per_s": ndjson_rate, "bare_produce_per_s": prod,
                             "bare_consume_per_s": cons}
        rows.append(("/bids NDJSON accepted", f"{ndjson_rate:,.0f} req/s",
                     f"{prod:,.0f} msg/s bare produce ({ndjson_rate / prod:.0%})",
                     "≥ 300,000 req/s"))
        rows.append(("bare consume (ceiling)", f"{cons:,.0f} msg/s", "", ""))
        for p in paused:
            p.resume()
    finally:
        for p in paused:  # a stopped process cannot act on SIGTERM
            with contextlib.suppress(psutil.Error):
                p.resume()
        for srv in servers:
            srv.terminate()
            srv.wait(20)
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
    table = Table(title="Helios benchmark (ratios vs ceilings measured in this run; "
                        "/bid and /bids with the bidder and auctioneer paused)")
    for col in ("figure", "measured", "ceiling / context", "target"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    write_results("latest.json", results)


async def offered_ndjson(url: str, bodies: list[bytes], rate: float, seconds: float) -> dict:
    """Offer `rate` requests/s as NDJSON batches of 500 on 8 connections (open loop)."""
    per = 500
    pool = Pool(url, 8)
    batches = ndjson_batches(bodies, per)
    accepted = 0
    tasks: set = set()

    async def send(b: bytes) -> None:
        nonlocal accepted
        status, body = await pool.post("/bids", b, b"application/x-ndjson")
        if status == 200:
            accepted += orjson.loads(body)["accepted"]

    t0 = time.perf_counter()
    sent = 0
    total = int(rate * seconds / per)
    while sent < total:
        due = min(total, int((time.perf_counter() - t0) * rate / per) + 1)
        while sent < due:
            if len(tasks) < 64:
                t = asyncio.create_task(send(batches[sent % len(batches)]))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
            sent += 1
        await asyncio.sleep(0.005)
    if tasks:
        await asyncio.wait(tasks, timeout=60)
    elapsed = time.perf_counter() - t0
    pool.close()
    return {"accepted": accepted, "accepted_per_s": accepted / elapsed, "seconds": elapsed}


if __name__ == "__main__":
    main()
