"""The ``helios`` command: run the platform, its services and its operator tools.

Errors a user can fix print one line saying what is wrong and how to fix it (exit 2);
tracebacks are for bugs.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from helios_pipeline.console import console, out, print_audit, print_json_line, progress
from ingest_services.settings import Settings, SettingsError, get_settings, load_settings

# Plain (click) help, not Rich's boxes: Rich cuts long option and variable names at 80
# columns (`--auctioneer-metrics-po…`); plain help wraps the text and keeps every name whole.
app = typer.Typer(help="Helios: real-time bidding analytics platform.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False, rich_markup_mode=None)
profiles_app = typer.Typer(help="User profiles.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(profiles_app, name="profiles")


def fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


def _settings(**overrides: object) -> Settings:
    given = {k: v for k, v in overrides.items() if v is not None}
    return load_settings(**given) if given else get_settings()


def _stack_endpoint(s: Settings, key: str) -> str | None:
    """An endpoint of the stack running on HELIOS_HOME (held lock), else None: a stale
    stack.json left by a stack that died is never trusted."""
    from helios_pipeline.stack.lock import running
    from helios_pipeline.stack.supervisor import read_stack

    if running(s.home) is None:
        return None
    state = read_stack(s.home)
    if state and state.get("status") in ("ready", "starting"):
        return state["endpoints"].get(key)
    return None


def _resolve(s: Settings, flag: str | None, key: str, setting: str | None, default: str
             ) -> tuple[str, str]:
    """(value, where it came from): the flag, the running stack, the HELIOS_ variable, or
    the default derived from the port settings. Said on stderr, so it is never a guess."""
    if flag:
        return flag, "the command line"
    from_stack = _stack_endpoint(s, key)
    if from_stack:
        return from_stack, f"the stack running on {s.home} (stack.json)"
    if setting is not None and setting in s.model_fields_set:
        return getattr(s, setting), f"HELIOS_{setting.upper()}"
    return default, f"the default (no stack running on {s.home})"


# ------------------------------------------------------------------ status, down, logs
@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """What runs on HELIOS_HOME, where, and whether each part is healthy (exit 1 if not)."""
    import psutil

    from helios_pipeline.stack.lock import running
    from helios_pipeline.stack.supervisor import read_stack

    s = get_settings()
    pid = running(s.home)
    state = read_stack(s.home) or {}
    if pid is None:
        rep = {"running": False, "home": str(s.home.resolve()),
               "last_status": state.get("status")}
        if as_json:
            print_json_line(rep)
        else:
            out.print(f"no stack running on {s.home.resolve()}"
                      + (f" (last one: {state['status']})" if state.get("status") else ""))
        raise typer.Exit(1)
    procs = {name: psutil.pid_exists(p) for name, p in state.get("processes", {}).items()}
    rep = {"running": True, "pid": pid, "home": str(s.home.resolve()),
           "status": state.get("status"), "processes": procs,
           "endpoints": state.get("endpoints", {})}
    healthy = state.get("status") == "ready" and all(procs.values())
    if as_json:
        print_json_line({**rep, "healthy": healthy})
    else:
        table = Table(title=f"helios stack on {rep['home']} (pid {pid}, {rep['status']})")
        table.add_column("process")
        table.add_column("state")
        for name, alive in procs.items():
            table.add_row(name, "[green]running[/]" if alive else "[red]gone[/]")
        out.print(table)
        for name, addr in rep["endpoints"].items():
            out.print(f"{name}: {addr}", highlight=False)
    if not healthy:
        raise typer.Exit(1)


@app.command()
def down(
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for the stop")] = 120,
) -> None:
    """Stop the stack running on HELIOS_HOME (started in another terminal)."""
    import os
    import time

    from helios_pipeline.stack.lock import running

    s = get_settings()
    pid = running(s.home)
    if pid is None:
        out.print(f"no stack running on {s.home.resolve()}")
        return
    if pid <= 0:
        raise fail(f"the stack on {s.home.resolve()} holds its lock but did not record its "
                   f"pid: stop it with Ctrl-C in its terminal")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    with console.status(f"stopping the stack on {s.home.resolve()} (pid {pid})…"):
        while running(s.home) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
    if running(s.home) is not None:
        raise fail(f"the stack (pid {pid}) did not stop within {timeout:.0f} s; "
                   f"see {s.home.resolve() / 'logs'}")
    out.print(f"stopped the stack on {s.home.resolve()}")


@app.command()
def logs(
    service: Annotated[str, typer.Argument(help="broker, redis, profiles, bidder, auctioneer, "
                                                "gateway, api, dagster-webserver, …")],
    lines: Annotated[int, typer.Option("--lines", "-n", min=1, help="How many lines")] = 50,
) -> None:
    """Print the last lines of one service's log under HELIOS_HOME."""
    s = get_settings()
    logs_dir = s.home / "logs"
    path = logs_dir / f"{service}.log"
    if not path.is_file():
        known = sorted(p.stem for p in logs_dir.glob("*.log")) if logs_dir.is_dir() else []
        raise fail(f"no log for {service!r} in {logs_dir.resolve()}: "
                   + (f"choose one of {', '.join(known)}" if known
                      else "no stack has run on this HELIOS_HOME yet"))
    from collections import deque

    with path.open(errors="replace") as f:
        for line in deque(f, maxlen=lines):
            sys.stdout.write(line)


# ------------------------------------------------------------------------------- up
REPLICATED = ("bidder", "auctioneer")


def parse_replicas(text: str) -> dict[str, int]:
    """``bidder=2,auctioneer=3`` → ``{"bidder": 2, "auctioneer": 3}``; one-line errors."""
    counts: dict[str, int] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or name not in REPLICATED or not value.strip().isdigit() \
                or not 1 <= int(value) <= 16:
            raise fail(f"--replicas {text!r}: write SERVICE=N[,SERVICE=N] with SERVICE one of "
                       f"{', '.join(REPLICATED)} and N from 1 to 16, e.g. bidder=2,auctioneer=2")
        counts[name] = int(value)
    return counts


@app.command()
def up(
    kafka_port: Annotated[int | None, typer.Option(help="Broker port [HELIOS_KAFKA_PORT]")] = None,
    redis_port: Annotated[int | None, typer.Option(help="Redis port [HELIOS_REDIS_PORT]")] = None,
    profile_port: Annotated[
        int | None, typer.Option(help="Profile gRPC port [HELIOS_PROFILE_PORT]")] = None,
    gateway_port: Annotated[
        int | None, typer.Option(help="Gateway HTTP port [HELIOS_GATEWAY_PORT]")] = None,
    bidder_metrics_port: Annotated[int | None, typer.Option(
        help="Bidder /metrics port [HELIOS_BIDDER_METRICS_PORT]")] = None,
    auctioneer_metrics_port: Annotated[int | None, typer.Option(
        help="Auctioneer /metrics port [HELIOS_AUCTIONEER_METRICS_PORT]")] = None,
    profile_metrics_port: Annotated[int | None, typer.Option(
        help="Profile service /metrics port [HELIOS_PROFILE_METRICS_PORT]")] = None,
    dagster_port: Annotated[int | None, typer.Option(
        help="Dagster UI port [HELIOS_DAGSTER_PORT]")] = None,
    api_port: Annotated[int | None, typer.Option(
        help="Analytics API and dashboard port [HELIOS_API_PORT]")] = None,
    dagster: Annotated[bool | None, typer.Option(
        "--dagster/--no-dagster", help="Also run Dagster webserver + daemon [HELIOS_DAGSTER]")
    ] = None,
    partitions: Annotated[int | None, typer.Option(
        help="Partitions per topic [HELIOS_PARTITIONS]")] = None,
    home: Annotated[Path | None, typer.Option(help="State directory [HELIOS_HOME]")] = None,
    gateway_workers: Annotated[int | None, typer.Option(
        help="Gateway worker processes; 0: one per core, at most 8 "
             "[HELIOS_GATEWAY_WORKERS]")] = None,
    replicas: Annotated[str | None, typer.Option(
        help="Consumers per group, e.g. bidder=2,auctioneer=2 [HELIOS_BIDDER_REPLICAS, "
             "HELIOS_AUCTIONEER_REPLICAS]")] = None,
    warehouse: Annotated[str | None, typer.Option(
        "--warehouse", help="Warehouse backend: duckdb (a file) or postgres (the embedded "
                            "PostgreSQL, or HELIOS_WAREHOUSE_DSN) [HELIOS_WAREHOUSE_BACKEND]")
    ] = None,
    durable_broker: Annotated[bool | None, typer.Option(
        "--durable-broker/--no-durable-broker",
        help="Keep the broker's data on disk under HOME/broker-s3, so a broker restart "
             "loses nothing [HELIOS_DURABLE_BROKER]")] = None,
) -> None:
    """Run the whole streaming platform on 127.0.0.1 in the foreground (Ctrl-C stops it)."""
    from helios_pipeline.stack.supervisor import StackError, Supervisor
    from helios_pipeline.warehouse.backend import BACKENDS

    if warehouse is not None and warehouse not in BACKENDS:
        raise fail(f"--warehouse {warehouse} (instead of HELIOS_WAREHOUSE_BACKEND) is not a "
                   f"warehouse backend: use {' or '.join(BACKENDS)}")
    counts = parse_replicas(replicas) if replicas else {}
    s = _settings(warehouse_backend=warehouse, kafka_port=kafka_port, redis_port=redis_port,
                  profile_port=profile_port,
                  gateway_port=gateway_port, bidder_metrics_port=bidder_metrics_port,
                  auctioneer_metrics_port=auctioneer_metrics_port,
                  profile_metrics_port=profile_metrics_port, dagster_port=dagster_port,
                  api_port=api_port, dagster=dagster, partitions=partitions, home=home,
                  gateway_workers=gateway_workers, durable_broker=durable_broker,
                  **{f"{name}_replicas": n for name, n in counts.items()})
    if s.durable_broker:
        from helios_pipeline.stack import broker_s3
        from helios_pipeline.stack.binaries import MissingBinary

        try:
            broker_s3.weed()
        except MissingBinary as exc:
            raise fail(str(exc)) from None
    sup = Supervisor(s, log=lambda msg: console.print(f"[dim]helios up:[/] {msg}", highlight=False))

    def on_signal(signum: int, _frame: object) -> None:
        sup.stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    try:
        sup.start()
        if not sup.stopping.is_set():
            table = Table(title=f"Helios stack ({s.stack_file})")
            table.add_column("endpoint")
            table.add_column("address")
            for name, addr in sup.eps.items():
                table.add_row(name, addr)
            out.print(table)
            console.print("ready — press Ctrl-C to stop")
            sup.watch()
    except StackError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        code = 1
    finally:
        sup.stop()
    raise typer.Exit(code)


# ---------------------------------------------------------------------------- serve
@app.command()
def serve(
    service: Annotated[str, typer.Argument(
        help="gateway | bidder | auctioneer | profiles | api")],
    port: Annotated[int | None, typer.Option(help="Gateway only: port to listen on")] = None,
    workers: Annotated[int | None, typer.Option(
        help="Gateway only: worker processes (default HELIOS_GATEWAY_WORKERS; 0: one per "
             "core, at most 8)")] = None,
) -> None:
    """Run one service alone (what a pod runs), configured by HELIOS_* variables."""
    if service == "api":
        _serve_api(port)
        return
    from ingest_services.runner import SERVICES, run_gateway
    from ingest_services.runner import serve as run

    if service not in SERVICES:
        raise fail(f"unknown service {service!r}: choose one of "
                   f"{', '.join((*SERVICES, 'api'))}")
    from ingest_services.settings import SERVICE_SETTINGS

    s = get_settings(SERVICE_SETTINGS[service])  # a pod reads only its own group
    if service == "gateway" and (port or workers):
        from ingest_services.common.logs import setup_logging

        setup_logging(s.log_level)
        run_gateway(s, port, workers)
    else:
        run(service, s)


def _serve_api(port: int | None) -> None:
    """The analytics API and dashboard (not a streaming service: it reads the snapshot).
    Checks the settings here (one-line error), then execs the lean entry point
    (helios_pipeline/api/serve.py): same PID, without this command's imports."""
    import os

    from helios_pipeline.api.serve import lean_command
    from ingest_services.settings import ApiSettings

    get_settings(ApiSettings)
    argv, env = lean_command(port)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, env)


# ------------------------------------------------------------------------- profiles
@profiles_app.command("seed")
def profiles_seed(
    users: Annotated[int, typer.Option(min=1, help="How many profiles")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same profiles")] = 7,
    redis_url: Annotated[str | None, typer.Option(help="Redis URL [HELIOS_REDIS_URL]")] = None,
) -> None:
    """Write a reproducible synthetic profile set to Redis."""
    import redis

    from ingest_services.profiles import store
    from ingest_services.profiles.seed import load_into_redis

    s = get_settings()
    url = redis_url or _stack_endpoint(s, "redis_url") or s.redis_url
    client = store.connect(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise fail(f"cannot reach Redis at {url} ({exc}): start it with `helios up` "
                   f"or pass --redis-url") from None
    with progress() as bar:
        task = bar.add_task("seeding profiles", total=users)
        n = load_into_redis(client, users, seed, on_batch=lambda k: bar.advance(task, k))
    out.print(f"seeded {n} profiles (seed {seed}) into {url}")


# ----------------------------------------------------------------------------- load
@app.command()
def load(
    rate: Annotated[float, typer.Option(min=1, help="Requests per second")] = 1000.0,
    duration: Annotated[float, typer.Option(min=0.1, max=3600, help="Seconds")] = 10.0,
    corpus: Annotated[
        Path | None, typer.Option(help="Directory of OpenRTB *.json to mix in")] = None,
    users: Annotated[int, typer.Option(min=0, help="Seeded users to target")] = 10_000,
    seed: Annotated[int, typer.Option(help="Traffic seed")] = 1,
    connections: Annotated[int, typer.Option(min=1, max=1024)] = 64,
    url: Annotated[str | None, typer.Option(help="Gateway URL (default: from stack.json)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    diurnal: Annotated[str | None, typer.Option(
        help="Follow the 24-hour traffic curve (docs/traffic.md): 'clock' (this hour's "
             "level; the count differs from rate × duration) or 'day' (a whole day squeezed "
             "into the run); default: a flat rate")] = None,
    batch: Annotated[int, typer.Option(
        min=1, max=10_000, help="Requests per HTTP call: 1 posts each to /bid; N > 1 sends "
                                "NDJSON bodies of N requests to /bids")] = 1,
) -> None:
    """Send a realistic mix of bid requests at a steady open-loop rate."""
    from helios_pipeline.loadgen import Traffic, read_corpus, run_load

    if diurnal not in (None, "clock", "day"):
        raise fail(f"--diurnal {diurnal!r}: choose clock or day (or leave it out for a flat "
                   f"rate)")
    s = get_settings()
    target, source = _resolve(s, url, "gateway_url", None,
                              f"http://127.0.0.1:{s.gateway_port}")
    try:
        files = read_corpus(corpus) if corpus else []
    except (OSError, ValueError) as exc:
        raise fail(f"--corpus: {exc}") from None
    traffic = Traffic(users, seed, files)
    with progress() as bar:
        how = "/bid" if batch == 1 else f"/bids (NDJSON × {batch})"
        task = bar.add_task(f"POST {target}{how} @ {rate:g}/s", total=int(rate * duration))
        report = asyncio.run(run_load(
            target, rate, duration, traffic, connections,
            progress=lambda done, total: bar.update(task, completed=done), diurnal=diurnal,
            batch=batch))
    if report.sent and report.statuses.get("error", 0) == report.sent:
        raise fail(f"no request reached the gateway at {target} (from {source}): "
                   f"is `helios up` running?")
    console.print(f"[dim]gateway {target} (from {source})[/]", highlight=False,
                  soft_wrap=True)
    if as_json:
        print_json_line(report.as_dict())
        return
    table = Table(title="helios load")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k in ("sent", "accepted", "rejected", "errors", "skipped", "achieved_rate"):
        # "skipped" (the JSON key) is what the demo calls "not sent": the same requests
        label = "not sent (skipped: too many outstanding)" if k == "skipped" else k
        table.add_row(label, str(getattr(report, k)))
    for k, v in report.latency_ms.items():
        table.add_row(f"latency {k} (ms)", f"{v:.2f}")
    out.print(table)


# ---------------------------------------------------------------------------- audit
@app.command()
def audit(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the pipeline to drain")] = 30.0,
    bootstrap: Annotated[str | None, typer.Option(
        help="Kafka bootstrap (default: from stack.json)")] = None,
    warehouse: Annotated[str | None, typer.Option(
        help="Warehouse: a DuckDB file or a PostgreSQL URI (default: from stack.json) "
             "[HELIOS_WAREHOUSE_PATH]")] = None,
) -> None:
    """Check that every accepted imp has exactly one outcome or dead letter: on the wire
    (duplicates allowed: at-least-once) and in the warehouse's outcomes (none missing, none
    doubled). Exit 1 if anything is missing anywhere or doubled in the warehouse."""
    import time

    from helios_pipeline.audit import Auditor, audit_warehouse, verdict

    s = get_settings()
    t0 = time.monotonic()
    bs, source = _resolve(s, bootstrap, "kafka_bootstrap", "kafka_bootstrap",
                          f"127.0.0.1:{s.kafka_port}")
    wh, wh_source = _resolve(s, warehouse, "warehouse", "warehouse_path",
                             s.warehouse_dsn if s.warehouse_backend == "postgres" and
                             s.warehouse_dsn else str(s.warehouse))
    try:
        auditor = Auditor(s.model_copy(update={"kafka_bootstrap": bs}))
    except Exception as exc:
        raise fail(f"cannot read the topics at {bs} (from {source}; {exc}): is the stack up?"
                   ) from None
    try:
        rep = auditor.drain(wait)
        try:
            rep["warehouse"] = audit_warehouse(auditor, wh,  # a DuckDB file or a URI
                                               max(0.0, wait - (time.monotonic() - t0)))
        except Exception as exc:
            raise fail(f"cannot read the warehouse {wh} (from {wh_source}; {exc}): pass "
                       f"--warehouse or set HELIOS_WAREHOUSE_PATH") from None
    finally:
        auditor.close()
    rep["ok"] = verdict(rep)
    console.print(f"[dim]audited Kafka at {bs} (from {source}) and the warehouse "
                  f"{rep['warehouse']['path']} (from {wh_source})[/]", highlight=False,
                  soft_wrap=True)
    if as_json:
        print_json_line(rep)
    else:
        print_audit(rep)
    wh_rep = rep["warehouse"]
    if wh_rep.get("checked") and wh_rep["missing"] and not rep["missing"]:
        console.print(f"[yellow]{wh_rep['missing']} accepted imps are on the wire but not in "
                      f"outcomes after {wait:g} s: the ingest runs on a sensor and may still be "
                      f"catching up (rerun with a longer --wait), or it is failing (see the "
                      f"Dagster runs)[/]", highlight=False, soft_wrap=True)
    if not rep["wire"]["read_complete"]:
        console.print(f"[red]the audit did not read the topics to the end in {wait:g} s "
                      f"({rep['wire']['unread_at_start']} messages that were there when it "
                      f"began are unread): nothing is proved; rerun with a longer --wait[/]",
                      highlight=False, soft_wrap=True)
    if not rep["ok"]:
        raise typer.Exit(1)


# --------------------------------------------------------------------------- export
@app.command()
def export(
    out: Annotated[Path, typer.Option(help="Directory for Parquet files and helios.duckdb")],
    from_: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD")] = None,
    to: Annotated[str | None, typer.Option(help="Last day, YYYY-MM-DD")] = None,
    warehouse: Annotated[Path | None, typer.Option(
        help="Warehouse DuckDB file [HELIOS_WAREHOUSE_PATH]")] = None,
) -> None:
    """Write analyst exports (Parquet per day + a read-only DuckDB file) from the warehouse
    (the DuckDB file, or PostgreSQL when HELIOS_WAREHOUSE_BACKEND=postgres)."""
    from datetime import date

    import duckdb

    from helios_pipeline.resources import WarehouseResource
    from helios_pipeline.warehouse.exports import export as run_export

    days = {}
    for flag, value in (("--from", from_), ("--to", to)):
        if value is not None:
            try:
                days[flag] = date.fromisoformat(value)
            except ValueError:
                raise fail(f"{flag} {value!r} is not a date: use YYYY-MM-DD") from None
    if len(days) == 2 and days["--from"] > days["--to"]:
        raise fail(f"--from {from_} is after --to {to}: swap them")
    if out.exists() and not out.is_dir():
        raise fail(f"--out {out} is a file: give a directory (it is created if missing)")
    s = get_settings()
    if warehouse is None and s.warehouse_backend == "postgres":
        if not s.warehouse_dsn:
            raise fail("HELIOS_WAREHOUSE_BACKEND=postgres needs HELIOS_WAREHOUSE_DSN: set it to "
                       "the warehouse's PostgreSQL URI, or pass --warehouse FILE")
        wh = WarehouseResource(backend="postgres", dsn=s.warehouse_dsn)
        where = "the PostgreSQL warehouse (HELIOS_WAREHOUSE_DSN)"
    else:
        path = warehouse or s.warehouse
        if not path.exists():
            raise fail(f"no warehouse at {path}: run `make demo` or materialise the outcome "
                       f"tables first, or pass --warehouse")
        wh = WarehouseResource(path=str(path), lock_timeout_s=30)
        where = str(path)
    import psycopg2.errors

    with progress() as bar:
        task = bar.add_task("exporting days", total=None)
        try:
            with wh.open(read_only=True) as db:
                counts = run_export(db, out, from_, to,
                                    on_day=lambda d, n, total: bar.update(task, completed=n,
                                                                          total=total))
        except (duckdb.CatalogException, psycopg2.errors.UndefinedTable):
            raise fail(f"{where} has no outcomes table yet: materialise `outcomes` first") \
                from None
    out.mkdir(parents=True, exist_ok=True)
    n = counts["days"]
    console.print(f"exported {n} day{'' if n == 1 else 's'}: {counts['outcomes']} outcome rows, "
                  f"{counts['daily_stats']} daily_stats rows → {out} "
                  f"(open {out / 'helios.duckdb'} read-only; from another directory, "
                  f"first SET file_search_path = '{out.resolve()}')")


# ----------------------------------------------------------------------------- demo
@app.command()
def demo(
    rate: Annotated[float, typer.Option(min=1, help="Synthetic requests per second")] = 2000.0,
    duration: Annotated[float, typer.Option(min=1, max=600, help="Seconds of traffic")] = 30.0,
    users: Annotated[int, typer.Option(min=1, help="Profiles to seed")] = 10_000,
    examples: Annotated[Path | None, typer.Option(
        help="OpenRTB examples to send first [HELIOS_EXAMPLES_DIR]")] = None,
    keep: Annotated[bool | None, typer.Option(
        "--keep", help="Leave the stack and Dagster UI running [HELIOS_KEEP=1]")] = None,
) -> None:
    """The main job on the embedded default: stack up, profiles, traffic, audit, stop."""
    from helios_pipeline.demo import run_demo

    s = get_settings()
    code = run_demo(s, rate=rate, duration=duration, users=users,
                    examples=examples or s.examples_dir, keep=s.keep if keep is None else keep,
                    console=console, out=out)
    raise typer.Exit(code)


def main() -> None:
    try:
        app()
    except SettingsError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
