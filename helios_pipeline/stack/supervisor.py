"""``helios up``: the whole streaming platform on one machine, supervised like pods.

Starts the broker and Redis from wheels, creates the topics, then the profile service,
bidder, auctioneer and gateway as child processes. A service that dies is restarted with
exponential backoff; one that keeps dying (or a broker/Redis crash, which would silently
lose the in-memory data) stops the whole stack with a non-zero exit naming it.
SIGINT/SIGTERM stop everything in reverse order, gracefully, leaving no process behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import psutil

from helios_pipeline.stack import binaries, probes
from ingest_services.settings import Settings

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Children get SIGTERM if the supervisor itself dies (even by SIGKILL): no orphans."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class StackError(RuntimeError):
    """The stack cannot start or cannot stay up; the message names the part."""


@dataclass
class Child:
    name: str
    argv: list[str]
    ready: Callable[[], bool]
    restartable: bool = True
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    restarts: list[float] = field(default_factory=list)
    next_start: float = 0.0


def endpoints(s: Settings) -> dict[str, str]:
    return {
        "gateway_url": f"http://127.0.0.1:{s.gateway_port}",
        "kafka_bootstrap": f"127.0.0.1:{s.kafka_port}",
        "redis_url": f"redis://127.0.0.1:{s.redis_port}/0",
        "profile_service": f"127.0.0.1:{s.profile_port}",
        "bidder_metrics": f"http://127.0.0.1:{s.bidder_metrics_port}/metrics",
        "auctioneer_metrics": f"http://127.0.0.1:{s.auctioneer_metrics_port}/metrics",
        "profile_metrics": f"http://127.0.0.1:{s.profile_metrics_port}/metrics",
        "gateway_metrics": f"http://127.0.0.1:{s.gateway_port}/metrics",
        "api_url": f"http://127.0.0.1:{s.api_port}/api/",
        "dashboard_url": f"http://127.0.0.1:{s.api_port}/",
        **({"dagster_ui": f"http://127.0.0.1:{s.dagster_port}"} if s.dagster else {}),
        # the DuckDB file, or (--warehouse postgres) the PostgreSQL URI, set once it runs
        "warehouse": str(s.warehouse.resolve()) if s.warehouse_backend == "duckdb"
        else s.warehouse_dsn or "",
        "warehouse_backend": s.warehouse_backend,
    }


PORT_FLAGS = {
    "kafka_port": "kafka",
    "redis_port": "redis",
    "profile_port": "profile service",
    "gateway_port": "gateway",
    "bidder_metrics_port": "bidder metrics",
    "auctioneer_metrics_port": "auctioneer metrics",
    "profile_metrics_port": "profile metrics",
    "dagster_port": "Dagster UI",
    "api_port": "analytics API",
}


def check_ports(s: Settings) -> None:
    seen: dict[int, str] = {}
    for attr, what in PORT_FLAGS.items():
        if attr == "dagster_port" and not s.dagster:
            continue
        port = getattr(s, attr)
        flag = "--" + attr.replace("_", "-")
        env = "HELIOS_" + attr.upper()
        if port in seen:
            raise StackError(f"port {port} is given to both {seen[port]} and {what}: "
                             f"choose another with {flag} or {env}")
        seen[port] = what
        if not probes.port_free(port):
            raise StackError(f"port {port} ({what}) is already in use: "
                             f"stop what holds it or choose another with {flag} or {env}")


def first_day_of_data(warehouse: Path) -> date | None:
    """The first ``day`` in an existing warehouse's ``outcomes``, or None."""
    if not warehouse.exists():
        return None
    import duckdb

    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error:
        return None
    try:
        return con.execute("SELECT min(day) FROM outcomes").fetchall()[0][0]
    except duckdb.Error:  # no outcomes table yet
        return None
    finally:
        con.close()


def descendants(pid: int) -> list[psutil.Process]:
    """Every process below ``pid`` now (children of children included)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stop_all(procs: list[psutil.Process], grace: float) -> list[str]:
    """SIGTERM what is still alive of ``procs``, SIGKILL it after ``grace`` s; returns a
    description of each process that had to be stopped (none when the parent's own shutdown
    took its children with it). Grandchildren do not get the parent-death signal, and a
    Dagster code server or multiprocessing's resource tracker can outlive its parent."""
    alive = [p for p in procs if _alive(p)]
    if not alive:
        return []
    names = []
    for p in alive:
        with contextlib.suppress(psutil.Error):
            names.append(f"{p.name()} (pid {p.pid})")
            p.terminate()
    _, still = psutil.wait_procs(alive, timeout=grace)
    for p in still:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(still, timeout=grace)
    return names


WAREHOUSE_DB = "helios_warehouse"


def check_warehouse(s: Settings) -> None:
    """``--warehouse postgres`` needs a PostgreSQL: HELIOS_WAREHOUSE_DSN, or the embedded one."""
    if s.warehouse_backend == "postgres" and not s.warehouse_dsn and (
            s.postgres_dsn or not s.postgres):
        raise StackError("--warehouse postgres needs a PostgreSQL warehouse: set "
                         "HELIOS_WAREHOUSE_DSN, or let helios up start its own (HELIOS_POSTGRES"
                         "=true and HELIOS_POSTGRES_DSN unset)")


class Supervisor:
    def __init__(self, s: Settings, log: Callable[[str], None] = print) -> None:
        self.s = s
        self.log = log
        self.home = s.home.resolve()
        self.logs = self.home / "logs"
        self.children: list[Child] = []
        self.stopping = threading.Event()
        self.eps = endpoints(s)
        self.postgres = None  # pgserver handle when the stack runs its own PostgreSQL
        self.lock = None  # the HELIOS_HOME lock, held from start() to stop()

    # ---- environment handed to every service: where its peers are ----
    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        # librdkafka and gRPC threads each get a glibc malloc arena; two bound the RSS
        env.setdefault("MALLOC_ARENA_MAX", "2")
        env.update({
            "HELIOS_HOME": str(self.home),
            "HELIOS_KAFKA_BOOTSTRAP": self.eps["kafka_bootstrap"],
            "HELIOS_REDIS_URL": self.eps["redis_url"],
            "HELIOS_PROFILE_ADDR": self.eps["profile_service"],
            "HELIOS_WAREHOUSE_PATH": str(self.s.warehouse.resolve()),
            "HELIOS_WAREHOUSE_BACKEND": self.s.warehouse_backend,
            "HELIOS_WAREHOUSE_DSN": (self.eps["warehouse"]
                                     if self.s.warehouse_backend == "postgres" else ""),
            "HELIOS_REPORTS_DIR": str(self.s.reports.resolve()),
            "HELIOS_EXPORTS_DIR": str(self.s.exports.resolve()),
            "HELIOS_SERVING_PATH": str(self.s.serving.resolve()),
            "DAGSTER_HOME": str(self.s.dagster_home.resolve()),
            # the code servers Dagster starts for the workspace log JSON too (click options
            # of `dagster api grpc` / `code-server start` read DAGSTER_CLI_* variables)
            "DAGSTER_CLI_API_GRPC_LOG_FORMAT": "json",
            "DAGSTER_CLI_CODE_SERVER_START_LOG_FORMAT": "json",
        })
        if "postgres_dsn" in self.eps:
            env["HELIOS_POSTGRES_DSN"] = self.eps["postgres_dsn"]
        for attr in PORT_FLAGS:
            env["HELIOS_" + attr.upper()] = str(getattr(self.s, attr))
        env["HELIOS_PARTITIONS_START"] = self.partitions_start().isoformat()
        for name in ("partitions", "topic_requests", "topic_responses", "topic_outcomes",
                     "gateway_workers"):
            env["HELIOS_" + name.upper()] = str(getattr(self.s, name))
        return env

    def partitions_start(self) -> date:
        """The first day of Dagster's daily partitions: HELIOS_PARTITIONS_START if set, else
        the first day of data, kept in ``$HELIOS_HOME/partitions_start`` from the first
        start of this home on (the first day in the warehouse, or today for a new one)."""
        if self.s.partitions_start:
            return self.s.partitions_start
        kept = self.home / "partitions_start"
        try:
            return date.fromisoformat(kept.read_text().strip())
        except (OSError, ValueError):
            pass
        first = first_day_of_data(self.s.warehouse) or datetime.now(UTC).date()
        self.home.mkdir(parents=True, exist_ok=True)
        kept.write_text(first.isoformat() + "\n")
        return first

    def plan(self) -> list[Child]:
        s = self.s
        serve = [sys.executable, "-m", "helios_pipeline.cli", "serve"]
        data = self.home / "redis"
        return [
            *self._broker(),
            Child("redis", [str(binaries.redis_server()), "--bind", "127.0.0.1",
                            "--port", str(s.redis_port), "--save", "", "--appendonly", "no",
                            "--dir", str(data)],
                  lambda: probes.tcp_open(s.redis_port), restartable=False),
            Child("profiles", [*serve, "profiles"],
                  lambda: probes.http_ok(f"http://127.0.0.1:{s.profile_metrics_port}/healthz")
                  and probes.tcp_open(s.profile_port)),
            *self._consumers("bidder", s.bidder_replicas, s.bidder_metrics_port),
            *self._consumers("auctioneer", s.auctioneer_replicas, s.auctioneer_metrics_port),
            Child("gateway", [*serve, "gateway"],
                  lambda: probes.http_ok(f"http://127.0.0.1:{s.gateway_port}/readyz")),
            # ready before any data: /readyz waits for the first snapshot, /healthz does not
            Child("api", [*serve, "api"],
                  lambda: probes.http_ok(f"http://127.0.0.1:{s.api_port}/healthz")),
            *(self._dagster_children() if s.dagster else []),
        ]

    def _broker(self) -> list[Child]:
        """Tansu on ``memory://`` (gone with the process: not restartable), or with
        --durable-broker on ``s3://`` against SeaweedFS on disk, started before it: both
        are then restarted like any service, and a restart loses nothing."""
        s = self.s
        argv = [str(binaries.tansu()), "broker",
                "--listener-url", f"tcp://127.0.0.1:{s.kafka_port}",
                "--advertised-listener-url", f"tcp://127.0.0.1:{s.kafka_port}"]
        ready = lambda: probes.tcp_open(s.kafka_port)  # noqa: E731
        if not s.durable_broker:
            return [Child("broker", [*argv, "--storage-engine", "memory://tansu/"], ready,
                          restartable=False)]
        from helios_pipeline.stack import broker_s3

        srv = broker_s3.plan(self.home / "broker-s3")
        self.eps["broker_s3"] = srv.endpoint
        return [Child("broker-s3", srv.argv, srv.ready, env=srv.env),
                Child("broker", [*argv, "--storage-engine", f"s3://{broker_s3.BUCKET}/"], ready,
                      env=srv.broker_env())]

    def _consumers(self, service: str, replicas: int, port: int) -> list[Child]:
        """``replicas`` processes of one consumer service in its consumer group, as a
        deployment scales them: ``bidder``, then ``bidder-2``, … each on its own status port
        (the first keeps the configured one; the others take free ports, in stack.json)."""
        serve = [sys.executable, "-m", "helios_pipeline.cli", "serve", service]
        children = []
        for k in range(1, replicas + 1):
            p = port if k == 1 else probes.free_port()
            name = service if k == 1 else f"{service}-{k}"
            if k > 1:
                self.eps[f"{name.replace('-', '_')}_metrics"] = f"http://127.0.0.1:{p}/metrics"
            children.append(Child(
                name, serve, lambda p=p: probes.http_ok(f"http://127.0.0.1:{p}/readyz"),
                env={f"HELIOS_{service.upper()}_METRICS_PORT": str(p)}))
        return children

    def _dagster_children(self) -> list[Child]:
        from helios_pipeline.stack.dagster_instance import write_embedded_instance, write_workspace

        write_embedded_instance(self.s.dagster_home.resolve())
        bin_dir = Path(sys.executable).parent
        ws = str(write_workspace(self.s.dagster_home.resolve()))
        port = self.s.dagster_port
        return [
            # JSON log lines like every other Helios process (the default is ANSI colour
            # codes, written into the log files)
            Child("dagster-webserver", [str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1",
                                        "-p", str(port), "-w", ws, "--log-format", "json"],
                  lambda: probes.http_ok(f"http://127.0.0.1:{port}/server_info")),
            Child("dagster-daemon", [str(bin_dir / "dagster-daemon"), "run", "-w", ws,
                                     "--log-format", "json"],
                  lambda: True),
        ]

    def _spawn(self, child: Child) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        out = open(self.logs / f"{child.name}.log", "ab")  # noqa: SIM115 (handed to the child)
        child.proc = subprocess.Popen(
            child.argv, env={**self.child_env(), **child.env}, stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
        )
        out.close()

    def _write_state(self, status: str, error: str | None = None) -> None:
        state = {
            "status": status,
            "pid": os.getpid(),
            "home": str(self.home),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "endpoints": self.eps,
            "topics": self.s.all_topics,
            "partitions": self.s.partitions,
            "processes": {
                **{c.name: c.proc.pid for c in self.children if c.proc},
                **({"postgres": self.postgres.get_pid()} if self.postgres else {}),
            },
            "logs": str(self.logs),
        }
        if error:
            state["error"] = error
        tmp = self.s.stack_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.s.stack_file)

    def start(self, timeout: float = 60.0) -> None:
        from helios_pipeline.stack.lock import HomeLock, HomeLocked

        lock = HomeLock(self.home)
        try:
            lock.acquire()  # before anything is written: a refused start changes nothing
        except HomeLocked as exc:
            raise StackError(
                f"a Helios stack is already running on HELIOS_HOME={self.home} (pid {exc}): "
                f"stop it with `helios down`, or start another with --home") from None
        self.lock = lock
        check_ports(self.s)
        check_warehouse(self.s)
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "redis").mkdir(exist_ok=True)
        for child in self.plan():
            if self.stopping.is_set():
                return
            self._spawn(child)
            self.children.append(child)
            self._write_state("starting")
            if not probes.wait_until(lambda c=child: c.ready() or c.proc.poll() is not None,
                                     timeout):
                raise StackError(f"{child.name} did not become ready within {timeout:.0f} s; "
                                 f"see {self.logs / (child.name + '.log')}")
            if child.proc.poll() is not None:
                raise StackError(f"{child.name} exited with code {child.proc.returncode} "
                                 f"while starting; see {self.logs / (child.name + '.log')}")
            self.log(f"started {child.name} (pid {child.proc.pid})")
            if child.name == "broker":
                self._create_topics()
            if child.name == "redis":
                self._start_postgres()
        self._write_state("ready")

    def _start_postgres(self) -> None:
        """PostgreSQL from the pgserver wheel: the serving database for several readers, and
        with ``--warehouse postgres`` the warehouse too (its own database, WAREHOUSE_DB).

        pgserver runs postgres as its own daemon (not a child we can restart); the stack
        stops it in stop(). A DSN given in HELIOS_POSTGRES_DSN is used instead.
        """
        if self.s.postgres_dsn:
            self.eps["postgres_dsn"] = self.s.postgres_dsn
        elif self.s.postgres:
            import pgserver

            self.s.postgres_dir.parent.mkdir(parents=True, exist_ok=True)
            self.postgres = pgserver.get_server(self.s.postgres_dir.resolve(),
                                                cleanup_mode="stop")
            self.eps["postgres_dsn"] = self.postgres.get_uri()
            self.log(f"started postgres (pid {self.postgres.get_pid()})")
        if self.s.warehouse_backend == "postgres" and not self.s.warehouse_dsn:
            self.eps["warehouse"] = self._warehouse_database()
            self.log(f"warehouse on PostgreSQL (database {WAREHOUSE_DB})")

    def _warehouse_database(self) -> str:
        """The embedded PostgreSQL's warehouse database (created on first use): apart from
        the serving tables, whose ``daily_stats`` has the warehouse table's name."""
        import psycopg2

        assert self.postgres is not None  # check_warehouse() made sure
        con = psycopg2.connect(self.postgres.get_uri())
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [WAREHOUSE_DB])
                if cur.fetchone() is None:
                    cur.execute(f"CREATE DATABASE {WAREHOUSE_DB}")
        finally:
            con.close()
        return self.postgres.get_uri(WAREHOUSE_DB)

    def _create_topics(self) -> None:
        from ingest_services.common.kafka import ensure_topics

        kafka = self.s.model_copy(update={"kafka_bootstrap": self.eps["kafka_bootstrap"]})
        ensure_topics(kafka)
        self.log(f"created {len(self.s.all_topics)} topics × {self.s.partitions} partitions")

    def watch(self) -> None:
        """Restart services that die; raise StackError when one cannot be kept up."""
        while not self.stopping.wait(0.5):
            now = time.monotonic()
            for child in self.children:
                code = child.proc.poll() if child.proc else None
                if code is None or self.stopping.is_set():
                    continue
                if not child.restartable:
                    raise StackError(f"{child.name} exited with code {code}; its in-memory "
                                     f"data is lost, so the stack stops")
                if child.next_start == 0.0:
                    child.restarts = [t for t in child.restarts
                                      if now - t < self.s.restart_window_s]
                    if len(child.restarts) >= self.s.restart_max:
                        raise StackError(
                            f"{child.name} keeps dying (exit code {code}, {len(child.restarts)} "
                            f"restarts in {self.s.restart_window_s:.0f} s); "
                            f"see {self.logs / (child.name + '.log')}")
                    delay = min(2 ** len(child.restarts) * 0.5, 10.0)
                    child.next_start = now + delay
                    self.log(f"{child.name} exited with code {code}; restarting in {delay:.1f} s")
                elif now >= child.next_start:
                    child.restarts.append(now)
                    child.next_start = 0.0
                    self._spawn(child)
                    self._write_state("ready")
                    self.log(f"restarted {child.name} (pid {child.proc.pid})")

    def stop(self, grace: float = 20.0) -> None:
        """Services first (they flush and commit), then Redis and the broker."""
        self.stopping.set()
        for child in reversed(self.children):
            proc = child.proc
            if proc is None or proc.poll() is not None:
                continue
            spawned = descendants(proc.pid)  # Dagster's code servers and run workers, …
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.log(f"{child.name} did not stop within {grace:.0f} s; killing it")
                proc.kill()
                proc.wait()
            code = proc.returncode
            self.log(f"stopped {child.name}" if code in (0, -signal.SIGTERM)
                     else f"stopped {child.name} (exit code {code})")
            if left := stop_all(spawned, grace=5.0):  # what its own shutdown left behind
                self.log(f"stopped {len(left)} process(es) {child.name} left running: "
                         f"{', '.join(left)}")
            if child.name == "redis" and self.postgres is not None:  # services are down
                self.postgres.cleanup()
                self.postgres = None
                self.log("stopped postgres")
        if self.postgres is not None:  # stack failed before Redis was stopped
            self.postgres.cleanup()
            self.postgres = None
        if self.lock is not None:  # only the stack that owns HELIOS_HOME writes its state
            if self.s.stack_file.exists():
                self._write_state("stopped")
            self.lock.release()
            self.lock = None


def read_stack(home: Path) -> dict | None:
    path = home / "stack.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
