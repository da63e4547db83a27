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
import urllib.request
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


def start_stack(home: Path, extra_env: dict[str, str] | None = None,
                args: tuple[str, ...] = ()) -> tuple[subprocess.Popen, dict, dict]:
    """``helios up`` with its defaults (``extra_env``/``args`` on top), free ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELIOS_")}
    env["HELIOS_HOME"] = str(home)
    env["HELIOS_LOG_LEVEL"] = "WARNING"
    env["HELIOS_DAGSTER"] = "false"  # measure the streaming half alone
    for var in PORTS:
        env[f"HELIOS_{var}"] = str(probes.free_port())
    env.update(extra_env or {})
    home.mkdir(parents=True, exist_ok=True)
    (home / "stack.json").unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "helios_pipeline.cli", "up", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(home / "up.err", "w"))  # noqa: SIM115
    ok = probes.wait_until(lambda: _state(home).get("status") == "ready", 120, 0.2)
    if not ok:
        proc.terminate()
        raise SystemExit(f"stack did not start; see {home}/up.err")
    return proc, _state(home), env


def stop_stack(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(120)


def scrape(urls: list[str], name: str) -> float:
    """The sum of every sample of metric ``name`` (any labels) over ``urls``' /metrics."""
    total = 0.0
    for url in urls:
        with urllib.request.urlopen(url, timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name) and line[len(name)] in " {":
                    total += float(line.rsplit(" ", 1)[1])
    return total


def auctioneer_metrics(state: dict) -> list[str]:
    eps = state["endpoints"]
    return [v for k, v in eps.items() if k.startswith("auctioneer") and k.endswith("_metrics")]


def responses_consumed(state: dict) -> float:
    """bid_responses the auctioneer(s) consumed: one per request through the bidder."""
    return scrape(auctioneer_metrics(state), "helios_messages_consumed_total")


def wait_consumed(state: dict, target: float, timeout: float, poll: float = 0.1
                  ) -> tuple[float | None, float | None, float, float]:
    """Poll the auctioneers until ``target`` responses are consumed or ``timeout`` passes:
    (first progress, target reached or None, last progress, responses consumed) with
    perf_counter times."""
    first = None
    last_got = responses_consumed(state)
    last = time.perf_counter()
    deadline = last + timeout
    while time.perf_counter() < deadline:
        got = responses_consumed(state)
        if got > last_got:
            last, last_got = time.perf_counter(), got
            if first is None:
                first = last
        if got >= target:
            return first, last, last, got
        time.sleep(poll)
    return first, None, last, last_got


def pipeline_drain(state: dict, s, bodies: list[bytes], n: int) -> dict:
    """Bidder + auctioneer throughput alone: ``n`` request envelopes produced straight to
    bid_requests (as the gateway writes them; the produce takes a fraction of the drain),
    timed from the auctioneers' first progress to their n-th bid response consumed."""
    from confluent_kafka import Producer

    from ingest_services.common.kafka import producer_config
    from ingest_services.contracts import messages as m

    imp_ids = [[imp["id"] for imp in orjson.loads(b)["imp"]] for b in bodies]
    base = responses_consumed(state)
    p = Producer(producer_config(s, "bench-drain"))
    t0 = time.perf_counter()
    for i in range(n):
        k = i % len(bodies)
        rid = m.new_rid()
        value = m.encode_request(rid, bodies[k], imp_ids[k], m.now_ms())
        while True:
            try:
                p.produce(s.topic_requests, value, rid)
                break
            except BufferError:
                p.poll(0.01)
    p.flush(60)
    produced_s = time.perf_counter() - t0
    first, done, last, got = wait_consumed(state, base + n, 180)
    if first is None:
        return {"requests": n, "rps": 0.0, "error": "no progress in 180 s"}
    out = {"requests": n, "consumed": got - base, "rps": (got - base) / max(last - first, 1e-3),
           "seconds": last - first, "produce_s": produced_s}
    if done is None:  # some never arrived: the rate up to the last progress, and say so
        out["error"] = f"{n - (got - base):.0f} of {n} requests never consumed"
    return out


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


SERVERS = ("uvicorn", "granian")


def raw_asgi_server(server: str, port: int, workers: int, env: dict) -> subprocess.Popen:
    """The raw ASGI ceiling app under ``server`` (same worker count as the gateway)."""
    if server == "granian":
        argv = [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
                "--port", str(port), "--workers", str(workers), "--no-log",
                "bench.ceilings:raw_asgi"]
    else:
        argv = [sys.executable, "-m", "uvicorn", "bench.ceilings:raw_asgi", "--port",
                str(port), "--workers", str(workers), "--log-level", "warning",
                "--no-access-log"]
    return serve_http(argv, port, env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=10, help="per HTTP measurement")
    ap.add_argument("--e2e-seconds", type=float, default=60)
    ap.add_argument("--e2e-rate", type=float, default=20_000, help="NDJSON end to end")
    ap.add_argument("--e2e-rate-single", type=float, default=10_000,
                    help="one request per call end to end (helios load)")
    ap.add_argument("--drain-requests", type=int, default=100_000,
                    help="requests queued for the bidder + auctioneer throughput figure")
    ap.add_argument("--home", type=Path, default=Path(".helios/bench"))
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--replicas", default="", metavar="SPEC",
                    help="consumers of the main stack, as helios up --replicas (e.g. "
                         "bidder=2,auctioneer=2): the pipeline and end-to-end stages then "
                         "run with them; default 1 of each")
    ap.add_argument("--skip-replicas", action="store_true",
                    help="no second stack with 2 bidders and 2 auctioneers")
    ap.add_argument("--servers", nargs="+", default=list(SERVERS), choices=SERVERS,
                    help="HTTP servers to measure the gateway under")
    ap.add_argument("--validation-only", action="store_true",
                    help="only the validation cost stage (no servers)")
    ap.add_argument("--validation-baseline", type=Path, metavar="FILE",
                    help="a module file defining validate_bid_request(obj), measured as "
                         "orjson.loads + it next to the contract")
    args = ap.parse_args()

    rows: list[tuple[str, str, str, str]] = []
    results: dict = {"uptime": os.getloadavg(), "cores": len(os.sched_getaffinity(0))}
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
    bodies = synthetic_bodies(4000)
    proc, state, env = start_stack(args.home,
                                   args=("--replicas", args.replicas) if args.replicas else ())
    each = args.replicas or "1 of each"
    eps = state["endpoints"]
    s = load_settings(kafka_bootstrap=eps["kafka_bootstrap"])
    from ingest_services.profiles import store
    from ingest_services.profiles.seed import load_into_redis

    results["stack"] = {"gateway_workers": load_settings().gateway_workers,
                        "gateway_server": load_settings().gateway_server,
                        "replicas": args.replicas or "bidder=1,auctioneer=1"}
    load_into_redis(store.connect(eps["redis_url"]), 10_000, seed=7)
    servers: list[subprocess.Popen] = []
    paused: list[psutil.Process] = []
    streaming = ("gateway", "bidder", "auctioneer", "profiles")
    try:
        # latency 202 → outcome at 1,000 requests/s, first: on a quiet pipeline
        console.print("latency 202 → outcome at 1,000 req/s…")
        since = int(time.time() * 1000)
        quiet_rss = RssSampler({k: v for k, v in state["processes"].items() if k in streaming})
        quiet_rss.start()
        asyncio.run(run_load(eps["gateway_url"], 1000, args.seconds, Traffic(10_000, 3, [])))
        lat = percentiles(outcome_latencies(s, since))
        quiet_rss.stop.set()
        results["rss_peak_mib_at_1000"] = {k: v / 2**20 for k, v in quiet_rss.peak.items()}
        results["outcome_latency_ms"] = lat
        rows.append(("202 → outcome p99 @ 1,000 req/s", f"{lat.get('p99', float('nan')):.0f} ms",
                     f"p50 {lat.get('p50', float('nan')):.0f} ms; fetch.wait.max.ms "
                     f"{s.stream_fetch_wait_max_ms}, linger.ms {s.linger_ms}", "≤ 100 ms"))
        for name, peak in quiet_rss.peak.items():
            rows.append((f"RSS peak {name} @ 1,000 req/s", f"{peak / 2**20:.0f} MiB", "",
                         "≤ 100 MiB"))
        gw_url = eps["gateway_url"]
        console.print("ceilings: bare produce and consume…")
        prod, cons = bare_produce_consume(s, bodies[0], 200_000)
        results["bare"] = {"produce_per_s": prod, "consume_per_s": cons}
        console.print(f"bidder + auctioneer alone, {each}: {args.drain_requests:,} requests…")
        drain1 = pipeline_drain(state, s, bodies, args.drain_requests)
        results["pipeline_1x1"] = drain1
        rows.append((f"bidder + auctioneer, {each}", f"{drain1['rps']:,.0f} req/s"
                     + (f" ({drain1['error']})" if "error" in drain1 else ""),
                     f"bare consume {cons:,.0f} msg/s", "(2 of each: below)"))
        if not args.skip_e2e:
            # ceiling of the one-per-call figure: the same load client, same rate and
            # connections, against the raw ASGI app (2 uvicorn workers), pipeline running
            raw_port = probes.free_port()
            raw = raw_asgi_server("uvicorn", raw_port, 2, env)
            client = asyncio.run(run_load(f"http://127.0.0.1:{raw_port}", args.e2e_rate_single,
                                          args.seconds, Traffic(10_000, 5, []),
                                          connections=128))
            raw.terminate()
            raw.wait(20)
            results["load_client_ceiling"] = client.as_dict()
            gw_metrics = [eps["gateway_metrics"]]
            for label, rate, batch in (("one request per call", args.e2e_rate_single, 1),
                                       ("NDJSON", args.e2e_rate, 500)):
                console.print(f"end to end, {label}: {rate:,.0f} req/s for "
                              f"{args.e2e_seconds:.0f} s…")
                sampler = RssSampler({k: v for k, v in state["processes"].items()
                                      if k in streaming})
                sampler.start()
                base = responses_consumed(state)
                rej0 = scrape(gw_metrics, "bid_requests_total")
                rep_load = asyncio.run(run_load(
                    gw_url, rate, args.e2e_seconds, Traffic(10_000, 11 + batch, []),
                    connections=128 if batch == 1 else 16, batch=batch))
                ended = time.perf_counter()
                _, done, _last, got = wait_consumed(state, base + rep_load.accepted, 120)
                drain_s = (done - ended) if done else float("nan")
                sampler.stop.set()
                from helios_pipeline.audit import Auditor

                auditor = Auditor(s)
                rep = auditor.drain(150)
                auditor.close()
                key = "e2e_single" if batch == 1 else "e2e_ndjson"
                results[key] = {"load": rep_load.as_dict(), "drain_s": drain_s, "audit": rep,
                                "gateway_requests": scrape(gw_metrics, "bid_requests_total")
                                - rej0,
                                "rss_peak_mib": {k: v / 2**20 for k, v in sampler.peak.items()}}
                offered = rep_load.sent + rep_load.skipped
                rows.append((f"end to end, {label}, {rate:,.0f} req/s × {args.e2e_seconds:.0f} s",
                             f"{rep_load.accepted:,} / {offered:,} accepted "
                             f"({rep_load.achieved_rate:,.0f} req/s), backlog drained "
                             f"+{drain_s:.1f} s",
                             f"pipeline alone {drain1['rps']:,.0f} req/s; load p99 "
                             f"{rep_load.latency_ms.get('p99', float('nan')):,.0f} ms"
                             + (f"; load client → raw ASGI {client.achieved_rate:,.0f} req/s"
                                if batch == 1 else ""),
                             "all accepted, drained ≤ 5 s"))
                if done is None:
                    rows.append((f"  never consumed ({label})",
                                 f"{base + rep_load.accepted - got:,.0f} requests", "", "0"))
                rows.append((f"  audit ({label})", f"missing {rep['missing']}, duplicated "
                             f"{rep['duplicated']}", f"drained: {rep['drained']}", "0 / 0"))
                rows.append((f"  RSS peak ({label})", ", ".join(
                    f"{k} {v / 2**20:.0f}" for k, v in sampler.peak.items()) + " MiB", "",
                    "(context)"))
        # The HTTP figures measure the gateway: pause the pipeline's consumers meanwhile so
        # they do not compete for the 2 cores (they resume from their commits afterwards).
        paused = [psutil.Process(pid) for k, pid in state["processes"].items()
                  if k.startswith(("bidder", "auctioneer"))]
        for p in paused:
            p.suspend()
        gw_env = {**env, "HELIOS_KAFKA_BOOTSTRAP": eps["kafka_bootstrap"]}
        for server in args.servers:
            gw_port, raw_port = probes.free_port(), probes.free_port()
            gw = serve_http([sys.executable, "-m", "helios_pipeline.cli", "serve", "gateway",
                             "--port", str(gw_port), "--workers", "2"], gw_port,
                            {**gw_env, "HELIOS_GATEWAY_SERVER": server})
            raw = raw_asgi_server(server, raw_port, 2, env)
            servers += [gw, raw]
            for c in (1, 8, 64, 100):
                console.print(f"gateway /bid under {server}, 2 workers, concurrency {c}…")
                base = asyncio.run(closed_loop(f"http://127.0.0.1:{raw_port}", bodies, c,
                                               args.seconds))
                got = asyncio.run(closed_loop(f"http://127.0.0.1:{gw_port}", bodies, c,
                                              args.seconds))
                results[f"bid_{server}_c{c}_w2"] = {"gateway": got, "raw_asgi": base}
                rows.append((f"/bid {server}, 2 workers, c={c}",
                             f"{got['rps']:,.0f} req/s, p99 {got['p99']:.2f} ms",
                             f"raw ASGI ({server}) {base['rps']:,.0f} req/s "
                             f"({got['rps'] / base['rps']:.0%}), p99 {base['p99']:.2f} ms",
                             "≥ 15,000 req/s" if c == 100 else "p99 ≤ 10 ms"))
            # NDJSON
            console.print(f"gateway /bids NDJSON under {server}…")
            batches = ndjson_batches(bodies, 1000)
            got = asyncio.run(closed_loop(f"http://127.0.0.1:{gw_port}", batches, 4,
                                          args.seconds, "/bids", b"application/x-ndjson"))
            ndjson_rate = got["rps"] * 1000
            results[f"ndjson_{server}"] = {"requests_per_s": ndjson_rate,
                                           "bare_produce_per_s": prod}
            rows.append((f"/bids NDJSON accepted, {server}, 2 workers",
                         f"{ndjson_rate:,.0f} req/s",
                         f"bare produce {prod:,.0f} msg/s ({ndjson_rate / prod:.0%})",
                         "≥ 300,000 req/s"))
            for srv in (gw, raw):
                srv.terminate()
                srv.wait(20)
        rows.append(("bare consume (ceiling)", f"{cons:,.0f} msg/s", "", ""))
        for p in paused:
            p.resume()
        paused = []
    finally:
        for p in paused:  # a stopped process cannot act on SIGTERM
            with contextlib.suppress(psutil.Error):
                p.resume()
        for srv in servers:
            if srv.poll() is None:
                srv.terminate()
                srv.wait(20)
        stop_stack(proc)
    if not args.skip_replicas:
        console.print("bidder + auctioneer, 2 of each (a second stack)…")
        proc2, state2, _env2 = start_stack(args.home.with_name(args.home.name + "-2x2"),
                                           args=("--replicas", "bidder=2,auctioneer=2"))
        try:
            s2 = load_settings(kafka_bootstrap=state2["endpoints"]["kafka_bootstrap"])
            load_into_redis(store.connect(state2["endpoints"]["redis_url"]), 10_000, seed=7)
            drain2 = pipeline_drain(state2, s2, bodies, args.drain_requests)
        finally:
            stop_stack(proc2)
        results["pipeline_2x2"] = drain2
        rows.append(("bidder + auctioneer, 2 of each", f"{drain2['rps']:,.0f} req/s"
                     + (f" ({drain2['error']})" if "error" in drain2 else ""),
                     f"{each} {drain1['rps']:,.0f} req/s "
                     f"(×{drain2['rps'] / max(drain1['rps'], 1):.2f})", ""))
    results["uptime_end"] = os.getloadavg()
    table = Table(title="Helios benchmark (ratios vs ceilings measured in this run; "
                        "/bid and /bids with the bidder and auctioneer paused); load "
                        f"{results['uptime'][0]:.1f} → {results['uptime_end'][0]:.1f}, "
                        f"{results['cores']} cores")
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
