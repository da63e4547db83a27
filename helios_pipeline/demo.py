"""``make demo``: the platform's main job on the embedded default, start to finish.

Starts ``helios up`` (broker, Redis, services, Dagster webserver and daemon), materialises
``user_profiles`` through Dagster, sends the shared OpenRTB examples and synthetic traffic,
audits the streams, waits for the sensor-driven ingest to bring every outcome into the
warehouse, materialises today's ``daily_stats``, the report and the exports through
Dagster, prints a summary and stops everything (unless asked to keep the UI running).
Exit code 0 only if every step succeeded and the audit's verdict holds: nothing missing on
the wire or in the warehouse, nothing doubled in the warehouse.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from rich.console import Console
from rich.table import Table

from helios_pipeline.stack.supervisor import read_stack
from ingest_services.settings import Settings


class DemoError(RuntimeError):
    pass


def _start_stack(s: Settings, console: Console) -> tuple[subprocess.Popen, dict]:
    s.home.mkdir(parents=True, exist_ok=True)
    s.stack_file.unlink(missing_ok=True)
    log = open(s.home / "up.log", "ab")  # noqa: SIM115 (handed to the child)
    proc = subprocess.Popen([sys.executable, "-m", "helios_pipeline.cli", "up"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=dict(os.environ))
    log.close()
    with console.status("starting the stack (broker, Redis, services, Dagster)…"):
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            state = read_stack(s.home)
            if state and state.get("status") == "ready":
                return proc, state
            if proc.poll() is not None:
                tail = (s.home / "up.log").read_text(errors="replace").strip().splitlines()
                raise DemoError(tail[-1] if tail else f"helios up exited {proc.returncode}")
            time.sleep(0.2)
    proc.terminate()
    raise DemoError(f"the stack did not become ready within 180 s; see {s.home / 'up.log'}")


def _stop_stack(proc: subprocess.Popen, console: Console) -> None:
    from helios_pipeline.stack.launch import stop_process

    if proc.poll() is None:
        with console.status("stopping the stack…"):
            stop_process(proc, grace=120)


def outcome_rows(warehouse: Path) -> int | None:
    """Rows in ``outcomes`` now, or None while a run holds the write lock / no table yet."""
    if not warehouse.exists():
        return 0
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error:
        return None
    try:
        return con.execute("SELECT count(*) FROM outcomes").fetchall()[0][0]
    except duckdb.CatalogException:
        return 0
    finally:
        con.close()


class FirstRowWatch(threading.Thread):
    """Notes when the first row lands in ``outcomes`` (the demo's 'time to first row')."""

    def __init__(self, warehouse: Path, t0: float) -> None:
        super().__init__(daemon=True)
        self.warehouse, self.t0 = warehouse, t0
        self.seconds: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            if (outcome_rows(self.warehouse) or 0) > 0:
                self.seconds = time.monotonic() - self.t0
                return


def run_demo(s: Settings, *, rate: float, duration: float, users: int, examples: Path,
             keep: bool, console: Console, out: Console) -> int:
    files = sorted(examples.glob("*.json"))
    if not files:
        console.print(f"[bold red]error:[/] no OpenRTB examples in {examples}: "
                      f"set HELIOS_EXAMPLES_DIR or pass --examples")
        return 2
    t0 = time.monotonic()
    try:
        proc, state = _start_stack(s, console)
    except DemoError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 1
    try:
        return _run(s, state, files, rate, duration, users, console, out, t0)
    except DemoError as exc:
        console.print(f"[bold red]demo failed:[/] {exc}", highlight=False, soft_wrap=True)
        return 1
    finally:
        if keep:
            console.print(f"stack left running (--keep): Dagster UI "
                          f"{state['endpoints'].get('dagster_ui')}; stop it with "
                          f"`kill {proc.pid}`")
        else:
            _stop_stack(proc, console)


def _run(s: Settings, state: dict, files: list[Path], rate: float, duration: float,
         users: int, console: Console, out: Console, t0: float) -> int:
    import dagster as dg

    from helios_pipeline.audit import Auditor, audit_warehouse, verdict
    from helios_pipeline.console import print_audit, progress
    from helios_pipeline.dagster_client import REPOSITORY, DagsterClient
    from helios_pipeline.loadgen import Traffic, run_load, send_files

    eps = state["endpoints"]
    warehouse = Path(eps["warehouse"])
    console.print(f"stack ready in {time.monotonic() - t0:.0f} s: gateway {eps['gateway_url']}"
                  f", Dagster UI {eps['dagster_ui']} (stack.json: {s.stack_file})")
    dagster = DagsterClient.from_url(eps["dagster_ui"])
    with console.status("loading the Dagster code location…"):
        location = dagster.wait_for_location()
    with console.status(f"materialising user_profiles ({users:,} users) through Dagster…"):
        run_id = dagster.submit_job_execution(
            "__ASSET_JOB", repository_location_name=location, repository_name=REPOSITORY,
            asset_selection=["user_profiles"],
            run_config={"ops": {"user_profiles": {"config": {"users": users, "seed": 7}}}})
        if (status := dagster.wait_for_run(run_id)) != dg.DagsterRunStatus.SUCCESS:
            raise DemoError(f"user_profiles run {run_id} ended {status.value}; "
                            f"see the Dagster UI")
    console.print(f"user_profiles: {users:,} profiles in DuckDB and Redis (run {run_id[:8]})")

    watch = FirstRowWatch(warehouse, time.monotonic())  # from the first request sent
    watch.start()
    statuses = asyncio.run(send_files(eps["gateway_url"], files))
    accepted_examples = statuses.get("202", 0)
    console.print(f"shared examples: {accepted_examples}/{len(files)} accepted")
    for k in statuses:
        if ":" in k:
            console.print(f"  [red]rejected[/] {k}")
    with progress() as bar:
        task = bar.add_task(f"synthetic traffic @ {rate:g}/s", total=int(rate * duration))
        load = asyncio.run(run_load(eps["gateway_url"], rate, duration,
                                    Traffic(users, seed=1, corpus=[]),
                                    progress=lambda d, t: bar.update(task, completed=d)))
    console.print(f"load: {load.accepted:,} accepted, {load.rejected} rejected, "
                  f"{load.errors} errors, {load.skipped:,} not sent (too many outstanding: "
                  f"the machine could not keep up), p99 {load.latency_ms.get('p99', 0):.1f} ms "
                  f"(on a small machine the load client, gateway, broker, bidder, auctioneer "
                  f"and Dagster share the cores: that, not the gateway, sets the tail)")
    auditor = Auditor(s.model_copy(update={"kafka_bootstrap": eps["kafka_bootstrap"]}))
    with console.status("auditing the streams until the pipeline drains…"):
        rep = auditor.drain(wait_s=120)
    total = rep["outcomes"]["total"]
    console.print(f"audit: {rep['accepted']:,} requests, {total:,} outcomes on the topic, "
                  f"{rep['missing']} missing, {rep['duplicated']} duplicated on the wire "
                  f"(allowed: at-least-once; the warehouse is checked below)")
    with progress() as bar:  # rows appear as the sensor's ingest runs commit
        task = bar.add_task("sensor-driven ingest: rows in outcomes", total=total)
        deadline = time.monotonic() + 300
        while (rows := outcome_rows(warehouse) or 0) < total and time.monotonic() < deadline:
            bar.update(task, completed=rows)
            time.sleep(1)
        bar.update(task, completed=rows)
    in_table = outcome_rows(warehouse)
    watch.stop.set()
    with console.status("auditing the warehouse's outcomes…"):
        rep["warehouse"] = audit_warehouse(auditor, warehouse, wait_s=60)
    auditor.close()
    if in_table != total:
        raise DemoError(f"outcomes has {in_table} rows, the stream {total}: the ingest did not "
                        f"catch up within 300 s (see runs in {eps['dagster_ui']})")
    with console.status("waiting for the analytics API's snapshot to show every outcome…"):
        api_rows, api_lag = api_outcomes(eps["api_url"], total, timeout_s=120)
    if api_rows != total:
        raise DemoError(f"the analytics API shows {api_rows} outcomes, the stream {total} "
                        f"(serving_snapshot runs: {eps['dagster_ui']})")
    console.print(f"analytics API: {api_rows:,} outcomes, {api_lag:.0f} s after the table")
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    with console.status(f"materialising daily_stats, the report and exports for {day}…"):
        run_id = dagster.submit_job_execution(
            "daily_report", repository_location_name=location, repository_name=REPOSITORY,
            tags={"dagster/partition": day})
        if (status := dagster.wait_for_run(run_id)) != dg.DagsterRunStatus.SUCCESS:
            raise DemoError(f"daily_report run {run_id} ended {status.value}; "
                            f"see the Dagster UI")

    print_audit(rep)
    k = rep["kpis"]
    summary = Table(title="Helios demo summary")
    summary.add_column("")
    summary.add_column("value", justify="right")
    rows = [
        ("requests accepted", f"{rep['accepted']:,}"), ("imps", f"{rep['imps']:,}"),
        ("bids", f"{k['bids']:,}"), ("wins", f"{k['wins']:,}"),
        ("win rate", f"{k['win_rate']:.2%}" if k["win_rate"] is not None else "n/a"),
        ("spend (USD)", f"{k['spend_usd']:.4f}"),
        ("eCPM (USD)", f"{k['ecpm_usd']:.4f}" if k["ecpm_usd"] else "n/a"),
        ("rows in outcomes", f"{in_table:,}"),
        ("first row in outcomes (after the first request)",
         f"{watch.seconds:.0f} s" if watch.seconds else "n/a"),
        ("report", str(s.reports.resolve() / day / "report.html")),
        ("exports", str(s.exports.resolve() / "helios.duckdb")),
        ("Dagster UI", eps["dagster_ui"]),
        ("dashboard", eps["dashboard_url"]),
        ("analytics API", eps["api_url"]),
    ]
    for row in rows:
        summary.add_row(*row)
    out.print(summary)
    # the guarantee (audit.verdict): nothing missing on the wire or in the warehouse, nothing
    # doubled in the warehouse; wire duplicates alone are at-least-once delivery
    ok = accepted_examples == len(files) and verdict(rep) and rep["drained"]
    out.print("[green]demo OK[/]" if ok else "[red]demo FAILED: see the audit above[/]")
    return 0 if ok else 1


def api_outcomes(api_url: str, expect: int, timeout_s: float) -> tuple[int, float]:
    """Poll the API's stats until it shows ``expect`` outcomes: (shown, seconds waited)."""
    import httpx

    t0 = time.monotonic()
    shown = -1
    while time.monotonic() - t0 < timeout_s:
        try:
            shown = httpx.get(f"{api_url}outcomes/stats/", timeout=5).json()["total_outcomes"]
        except (httpx.HTTPError, KeyError, ValueError):
            shown = -1
        if shown == expect:
            break
        time.sleep(1)
    return shown, time.monotonic() - t0
