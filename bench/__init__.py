"""Benchmarks (`make bench`): each figure next to a ceiling or baseline from the same run."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).with_name("results")


def write_results(name: str, data: object) -> Path:
    """``bench/results/<name>`` as indented JSON (git-ignored); returns the path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def cpu_ticks() -> tuple[int, int] | None:
    """(steal, total) CPU ticks of the whole machine so far, from /proc/stat; None where that
    is not available. Steal is the time the hypervisor ran someone else on this VM's CPUs."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (fields[7] if len(fields) > 7 else 0), sum(fields)


def steal_pct(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of the machine's CPU time stolen between two ``cpu_ticks()``, in per cent:
    on a shared host it inflates every latency measured meanwhile, so figures taken under
    different steal are not comparable (bench/README.md, "The load generator")."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round(100 * (after[0] - before[0]) / (after[1] - before[1]), 1)
