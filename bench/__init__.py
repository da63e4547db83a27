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
