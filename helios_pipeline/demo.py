"""``make demo``: the platform's main job on the embedded default, start to finish.

Starts ``helios up`` as a child process, seeds profiles, sends the shared OpenRTB examples
and synthetic traffic, waits for the pipeline to drain, prints the audit and a KPI summary,
and stops everything. Exit code 0 only if every example was accepted and the audit shows
nothing missing and nothing duplicated.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from helios_pipeline.settings import Settings
from helios_pipeline.stack.supervisor import read_stack


def _start_stack(s: Settings, console: Console) -> tuple[subprocess.Popen, dict]:
    s.home.mkdir(parents=True, exist_ok=True)
    s.stack_file.unlink(missing_ok=True)
    log = open(s.home / "up.log", "ab")  # noqa: SIM115 (handed to the child)
    proc = subprocess.Popen([sys.executable, "-m", "helios_pipeline.cli", "up"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=dict(os.environ))
    log.close()
    with console.status("starting the stack (broker, Redis, services)…"):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = read_stack(s.home)
            if state and state.get("status") == "ready":
                return proc, state
            if proc.poll() is not None:
                tail = (s.home / "up.log").read_text(errors="replace").strip().splitlines()
                raise RuntimeError(tail[-1] if tail else f"helios up exited {proc.returncode}")
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"the stack did not become ready within 120 s; see {s.home / 'up.log'}")


def _stop_stack(proc: subprocess.Popen, console: Console) -> None:
    if proc.poll() is None:
        with console.status("stopping the stack…"):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_demo(s: Settings, *, rate: float, duration: float, users: int, examples: Path,
             console: Console, out: Console) -> int:
    from helios_pipeline.audit import Auditor
    from helios_pipeline.cli import _progress, print_audit
    from helios_pipeline.loadgen import Traffic, run_load, send_files
    from ingest_services.profiles import store
    from ingest_services.profiles.seed import load_into_redis

    files = sorted(examples.glob("*.json"))
    if not files:
        console.print(f"[bold red]error:[/] no OpenRTB examples in {examples}: "
                      f"set HELIOS_EXAMPLES_DIR or pass --examples")
        return 2
    try:
        proc, state = _start_stack(s, console)
    except RuntimeError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 1
    eps = state["endpoints"]
    try:
        console.print(f"stack ready: gateway {eps['gateway_url']}, "
                      f"kafka {eps['kafka_bootstrap']} (stack.json: {s.stack_file})")
        with _progress() as bar:
            task = bar.add_task("seeding profiles", total=users)
            load_into_redis(store.connect(eps["redis_url"]), users, seed=7,
                            on_batch=lambda k: bar.advance(task, k))
        statuses = asyncio.run(send_files(eps["gateway_url"], files))
        accepted_examples = statuses.get("202", 0)
        console.print(f"shared examples: {accepted_examples}/{len(files)} accepted")
        for k in statuses:
            if ":" in k:
                console.print(f"  [red]rejected[/] {k}")
        with _progress() as bar:
            task = bar.add_task(f"synthetic traffic @ {rate:g}/s", total=int(rate * duration))
            load = asyncio.run(run_load(eps["gateway_url"], rate, duration,
                                        Traffic(users, seed=1, corpus=[]),
                                        progress=lambda d, t: bar.update(task, completed=d)))
        console.print(f"load: {load.accepted} accepted, {load.rejected} rejected, "
                      f"{load.errors} errors, p99 {load.latency_ms.get('p99', 0):.1f} ms")
        auditor = Auditor(s.model_copy(update={"kafka_bootstrap": eps["kafka_bootstrap"]}))
        with console.status("waiting for the pipeline to drain…"):
            rep = auditor.drain(wait_s=120)
        auditor.close()
    finally:
        _stop_stack(proc, console)
    print_audit(rep)
    k = rep["kpis"]
    summary = Table(title="Helios demo summary")
    summary.add_column("KPI")
    summary.add_column("value", justify="right")
    summary.add_row("requests", str(rep["accepted"]))
    summary.add_row("imps", str(rep["imps"]))
    summary.add_row("bids", str(k["bids"]))
    summary.add_row("wins", str(k["wins"]))
    summary.add_row("win rate", f"{k['win_rate']:.2%}" if k["win_rate"] is not None else "–")
    summary.add_row("spend (USD)", f"{k['spend_usd']:.4f}")
    summary.add_row("eCPM (USD)", f"{k['ecpm_usd']:.4f}" if k["ecpm_usd"] else "–")
    out.print(summary)
    ok = (accepted_examples == len(files) and rep["missing"] == 0 and rep["duplicated"] == 0
          and rep["drained"])
    out.print("[green]demo OK[/]" if ok else "[red]demo FAILED: see the audit above[/]")
    return 0 if ok else 1
