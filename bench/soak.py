"""``python -m bench.soak``: a steady moderate load on a whole `helios up`, for minutes, and
a report of what changed: throughput and latency percentiles per interval, the RSS of every
process at start and end (growth per hour), and the audit of the wire and the warehouse.

A command, not a CI test (issue #9): it runs for ``--minutes`` (10 by default). The stack
runs on free ports in a temporary HELIOS_HOME, with Dagster (the sensor ingests as data
arrives) unless ``--no-dagster``; everything it starts is stopped by PID at the end.
Output: a table on the terminal, ``bench/results/soak.json`` and ``bench/results/soak.md``
(paste the latter into docs/reliability.md).

Reading it: a service whose RSS keeps growing at a steady rate over the run has a leak or
an unbounded buffer; the first minutes include warm-up (imports, caches, the first
snapshot), so growth is computed from the end of the first interval.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

from bench import write_results
from helios_pipeline.loadgen import Traffic, run_load
from helios_pipeline.stack.launch import LaunchedStack, isolated_env

console = Console()
def rss_by_process(state: dict, children: bool = False) -> dict[str, float]:
    """MiB per Helios process: its own RSS, or (``children``) the sum over what it started
    (uvicorn workers, Dagster's code servers and run processes, which come and go)."""
    out = {}
    for name, pid in state.get("processes", {}).items():
        try:
            proc = psutil.Process(pid)
            tree = proc.children(recursive=True) if children else [proc]
            out[name] = round(sum(p.memory_info().rss for p in tree if p.is_running()) / 2**20, 1)
        except psutil.Error:
            out[name] = 0.0
    return out


def cpu_seconds(state: dict) -> dict[str, float]:
    """CPU seconds (user + system) each Helios process has used so far (its own, not its
    children's): per interval, the share of a core each one took."""
    out = {}
    for name, pid in state.get("processes", {}).items():
        try:
            t = psutil.Process(pid).cpu_times()
            out[name] = t.user + t.system
        except psutil.Error:
            out[name] = 0.0
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=500.0, help="requests per second")
    ap.add_argument("--interval", type=float, default=60.0, help="seconds per load interval")
    ap.add_argument("--no-dagster", action="store_true")
    ap.add_argument("--audit-wait", type=float, default=120.0,
                    help="seconds the closing audit may take to read the topics and see the "
                         "warehouse catch up (an hour on the embedded broker needs more)")
    args = ap.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="helios-soak-"))
    stack = LaunchedStack(home, env=isolated_env(
        home, HELIOS_DAGSTER=str(not args.no_dagster).lower()))
    env = stack.env
    try:
        state = stack.wait_ready(120)
        gateway = state["endpoints"]["gateway_url"]
        rss_start = rss_by_process(state)
        cpu_start = cpu_before = cpu_seconds(state)
        console.print(f"stack ready in {home}; {args.rate:g} req/s for {args.minutes:g} min")
        traffic = Traffic(10_000, seed=3, corpus=[])
        rows, rss_after_first = [], None
        end = time.monotonic() + args.minutes * 60
        while (left := end - time.monotonic()) > 1:
            seconds = min(args.interval, left)
            began = time.monotonic()
            rep = asyncio.run(run_load(gateway, args.rate, seconds, traffic))
            cpu_now = cpu_seconds(state)
            cpu_pct = {n: round(100 * (cpu_now[n] - cpu_before.get(n, 0))
                                / (time.monotonic() - began)) for n in cpu_now}
            cpu_before = cpu_now
            rss = rss_by_process(state)
            rss_after_first = rss_after_first or (rss, time.monotonic())
            rows.append({"at_s": round(args.minutes * 60 - (end - time.monotonic())),
                         "sent": rep.sent, "accepted": rep.accepted, "errors": rep.errors,
                         "not_sent": rep.skipped, "achieved_rate": rep.achieved_rate,
                         **{f"latency_{k}_ms": v for k, v in rep.latency_ms.items()},
                         "rss_total_mib": round(sum(rss.values()), 1),
                         "children_rss_mib": round(sum(rss_by_process(state, True).values()),
                                                   1),
                         "cpu_pct_of_a_core": cpu_pct})
            console.print(rows[-1])
        rss_end = rss_by_process(state)
        cpu_used = {n: round(v - cpu_start.get(n, 0), 1) for n, v in cpu_seconds(state).items()}
        kids_end = rss_by_process(state, children=True)
        hours = max((time.monotonic() - rss_after_first[1]) / 3600, 1e-9)
        audit = subprocess.run([sys.executable, "-m", "helios_pipeline.cli", "audit", "--json",
                                "--wait", str(args.audit_wait)],
                               env=env, capture_output=True, text=True)
        verdict = json.loads(audit.stdout.strip().splitlines()[-1]) if audit.stdout else {}
    finally:
        stack.stop()

    growth = {name: round((rss_end[name] - rss_after_first[0].get(name, 0)) / hours, 1)
              for name in rss_end}
    result = {"started": datetime.now(UTC).isoformat(timespec="seconds"),
              "rate": args.rate, "minutes": args.minutes, "dagster": not args.no_dagster,
              "intervals": rows, "rss_start_mib": rss_start, "rss_end_mib": rss_end,
              "rss_growth_mib_per_hour_after_warmup": growth,
              "children_rss_end_mib": kids_end,
              "cpu_seconds": cpu_used,
              "audit": {k: verdict.get(k) for k in ("accepted", "missing", "duplicated", "ok",
                                                     "wire", "warehouse")},
              "audit_exit": audit.returncode,
              # why an audit did not complete: its one-line `error:` (librdkafka may log
              # around it)
              "audit_error": next((ln for ln in reversed(audit.stderr.splitlines())
                                   if ln.startswith("error:")), audit.stderr[-500:])
              if audit.returncode else ""}
    write_results("soak.json", result)

    t = Table(title=f"soak: {args.rate:g} req/s for {args.minutes:g} min")
    for col in ("process", "RSS start MiB", "RSS end MiB", "growth MiB/h (after warm-up)",
                "growth ×24 h", "its children at the end MiB", "CPU s"):
        t.add_column(col, justify="right")
    for name in rss_end:
        t.add_row(name, str(rss_start.get(name)), str(rss_end[name]), str(growth[name]),
                  str(round(growth[name] * 24)), str(kids_end.get(name, 0.0)),
                  str(cpu_used.get(name)))
    console.print(t)
    md = ["| at s | sent | accepted | errors | not sent | req/s | p50 ms | p99 ms "
          "| RSS of the processes MiB | of what they started MiB | CPU % of a core: broker "
          "/ gateway / bidder / auctioneer |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    md += [f"| {r['at_s']} | {r['sent']} | {r['accepted']} | {r['errors']} | {r['not_sent']} | "
           f"{r['achieved_rate']} | {r.get('latency_p50_ms')} | {r.get('latency_p99_ms')} | "
           f"{r['rss_total_mib']} | {r['children_rss_mib']} | "
           + " / ".join(str(r["cpu_pct_of_a_core"].get(n, "")) for n in
                        ("broker", "gateway", "bidder", "auctioneer")) + " |" for r in rows]
    md += ["", "| process | RSS start MiB | RSS end MiB | growth MiB/h after warm-up "
               "| its children at the end MiB | CPU s |", "|---|---|---|---|---|---|"]
    md += [f"| {n} | {rss_start.get(n)} | {rss_end[n]} | {growth[n]} | {kids_end.get(n)} "
           f"| {cpu_used.get(n)} |" for n in rss_end]
    md += ["", f"audit: {json.dumps(result['audit'])}, exit {audit.returncode}"]
    out = write_results("soak.md", "")
    out.write_text("\n".join(md) + "\n")
    console.print(f"results: {out} and soak.json; audit exit {audit.returncode}")


if __name__ == "__main__":
    main()
