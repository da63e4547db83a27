"""The embedded broker's memory over a soak: what leaving ``helios up`` running costs.

``python -m bench.broker_memory [--rate R] [--minutes M] [--sample-s S] [--engines E,…]``

Tansu's ``memory://`` storage engine keeps every record it is sent and never frees one
(no retention), so its RSS grows with the traffic for as long as the stack runs. This
starts a real ``helios up --no-dagster`` (temp HELIOS_HOME, free 127.0.0.1 ports, stopped
by PID), samples the broker's RSS (psutil) while idle (the baseline drift), then while
``helios load`` sends R requests/s for M minutes, and fits a line through the samples.
The growth is extrapolated to MiB per million accepted requests and MiB per day at the
achieved rate, next to its baselines from the same run: the idle drift, the broker's RSS
at start, and the machine's RAM (hours until the broker alone would fill it).

Each run's HELIOS_HOME is deleted afterwards unless ``--keep``.
``--engines memory,durable`` runs a second soak, the same, with
``helios up --durable-broker`` (Tansu on ``s3://`` against a disk-backed S3 server), so
both engines' figures stand side by side; the S3 server's RSS and its data on disk are
sampled too.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench import write_results
from helios_pipeline.stack.launch import LaunchedStack, isolated_env

MIB = 1024 * 1024

def slope(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope (y per x) of ``(x, y)`` samples; 0 for fewer than two."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mx = sum(x for x, _ in samples) / n
    my = sum(y for _, y in samples) / n
    den = sum((x - mx) ** 2 for x, _ in samples)
    return sum((x - mx) * (y - my) for x, y in samples) / den if den else 0.0


def rss(pid: int | None) -> float | None:
    """Resident set of ``pid`` and its children, in MiB (None once it is gone)."""
    if pid is None:
        return None
    try:
        p = psutil.Process(pid)
        return sum(q.memory_info().rss for q in [p, *p.children(recursive=True)]) / MIB
    except psutil.Error:
        return None


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def soak(mode: str, rate: float, minutes: float, every: float, idle_s: float,
         keep: bool = False, connections: int = 64) -> dict:
    """One ``helios up`` (``mode`` memory or durable), idle then loaded; the samples."""
    home = Path(tempfile.mkdtemp(prefix=f"helios-brokermem-{mode}-"))
    env = isolated_env(home, HELIOS_DAGSTER="false", HELIOS_POSTGRES="false")
    stack = LaunchedStack(home, *(["--durable-broker"] if mode == "durable" else []), env=env)
    try:
        try:
            state = stack.wait_ready(120)
        except RuntimeError as exc:
            raise SystemExit(f"helios up ({mode}): {exc}") from None
        procs = state["processes"]
        broker, s3 = procs["broker"], procs.get("broker-s3")
        t0 = time.monotonic()
        samples: list[dict] = []

        def sample(phase: str) -> None:
            samples.append({"t": round(time.monotonic() - t0, 1), "phase": phase,
                            "broker_mib": rss(broker), "s3_mib": rss(s3),
                            "s3_disk_mib": du(home / "broker-s3") / MIB if s3 else None})

        while time.monotonic() - t0 < idle_s:
            sample("idle")
            time.sleep(every)
        duration = minutes * 60
        load = subprocess.Popen(
            [sys.executable, "-m", "helios_pipeline.cli", "load", "--rate", str(rate),
             "--duration", str(duration), "--connections", str(connections), "--json"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        while load.poll() is None:
            sample("load")
            time.sleep(every)
        sample("load")
        report = json.loads(load.stdout.read() or "{}")
        return {"mode": mode, "home": str(home), "samples": samples, "load": report,
                "offered_rate": rate, "seconds": duration}
    finally:
        stack.stop()
        if not keep:
            shutil.rmtree(home, ignore_errors=True)


def figures(run: dict) -> dict:
    idle = [(s["t"], s["broker_mib"]) for s in run["samples"]
            if s["phase"] == "idle" and s["broker_mib"] is not None]
    loaded = [(s["t"], s["broker_mib"]) for s in run["samples"]
              if s["phase"] == "load" and s["broker_mib"] is not None]
    per_s = slope(loaded)
    accepted = run["load"].get("accepted", 0)
    achieved = run["load"].get("achieved_rate", 0.0)
    start = loaded[0][1] if loaded else None
    end = loaded[-1][1] if loaded else None
    ram = psutil.virtual_memory().total / MIB
    per_day = per_s * 86400
    s3 = [s for s in run["samples"] if s["s3_mib"] is not None]
    return {
        "mode": run["mode"], "offered_rate": run["offered_rate"], "achieved_rate": achieved,
        "accepted": accepted, "load_errors": run["load"].get("errors"),
        "seconds": run["seconds"], "samples": len(loaded),
        "broker_rss_idle_mib": idle[-1][1] if idle else None,
        "broker_rss_start_mib": start, "broker_rss_end_mib": end,
        "growth_mib_per_min": per_s * 60, "idle_drift_mib_per_min": slope(idle) * 60,
        "mib_per_million_requests": (per_s / achieved * 1e6) if achieved else None,
        "mib_per_day_at_rate": per_day, "machine_ram_mib": ram,
        "hours_to_fill_ram": (ram - (end or 0)) / per_day * 24 if per_day > 0 else None,
        "s3_rss_end_mib": s3[-1]["s3_mib"] if s3 else None,
        "s3_disk_end_mib": s3[-1]["s3_disk_mib"] if s3 else None,
        "s3_disk_mib_per_million_requests":
            (s3[-1]["s3_disk_mib"] / accepted * 1e6) if s3 and accepted else None,
    }


def fmt(v: object, unit: str = "") -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.1f}{unit}"
    return f"{v:,}{unit}"


def table(figs: list[dict]) -> str:
    rows = [("| figure | " + " | ".join(f["mode"] for f in figs) + " | baseline (same run) |"),
            "|---|" + "---|" * len(figs) + "---|"]
    mem = figs[0]  # the first engine's idle and offered figures are the baselines

    def row(name: str, key: str, unit: str, baseline: str) -> None:
        rows.append(f"| {name} | " + " | ".join(fmt(f[key], unit) for f in figs)
                    + f" | {baseline} |")

    row("requests/s achieved", "achieved_rate", "", f"offered {fmt(mem['offered_rate'])}")
    row("requests accepted", "accepted", "", f"over {fmt(mem['seconds'])} s")
    row("broker RSS at start of load", "broker_rss_start_mib", " MiB",
        f"idle {fmt(mem['broker_rss_idle_mib'], ' MiB')}")
    row("broker RSS at end", "broker_rss_end_mib", " MiB", "")
    row("broker RSS growth", "growth_mib_per_min", " MiB/min",
        f"idle drift {fmt(mem['idle_drift_mib_per_min'], ' MiB/min')}")
    row("growth per million requests", "mib_per_million_requests", " MiB", "")
    row("growth per day at this rate", "mib_per_day_at_rate", " MiB",
        f"machine RAM {fmt(mem['machine_ram_mib'], ' MiB')}")
    row("hours until the broker fills RAM", "hours_to_fill_ram", " h", "")
    if any(f["s3_rss_end_mib"] is not None for f in figs):
        row("S3 server RSS at end", "s3_rss_end_mib", " MiB", "")
        row("S3 server data on disk at end", "s3_disk_end_mib", " MiB", "")
        row("disk per million requests", "s3_disk_mib_per_million_requests", " MiB", "")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=2000.0, help="requests/s offered")
    ap.add_argument("--minutes", type=float, default=5.0, help="minutes of load per engine")
    ap.add_argument("--sample-s", type=float, default=5.0, help="seconds between samples")
    ap.add_argument("--idle-s", type=float, default=20.0, help="idle baseline before load")
    ap.add_argument("--engines", default="memory",
                    help="comma-separated soaks in order: memory (the default broker), "
                         "durable (`helios up --durable-broker`: s3:// on disk)")
    ap.add_argument("--connections", type=int, default=64, help="helios load --connections")
    ap.add_argument("--keep", action="store_true", help="keep each run's HELIOS_HOME")
    a = ap.parse_args(argv)
    engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    if not engines or set(engines) - {"memory", "durable"}:
        ap.error(f"--engines {a.engines!r}: give memory, durable or memory,durable")
    runs = [soak(e, a.rate, a.minutes, a.sample_s, a.idle_s, a.keep, a.connections)
            for e in engines]
    figs = [figures(r) for r in runs]
    print(table(figs))
    path = write_results("broker_memory.json", {"figures": figs, "runs": runs})
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
