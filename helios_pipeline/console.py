"""Terminal output shared by the CLI and the demo: consoles, progress bars, the audit table."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True)  # progress, status and errors
out = Console()  # results (tables, JSON), so they can be piped


def progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=False)


def print_json_line(obj: object) -> None:
    """A machine-readable result (``--json``): exactly one line of plain JSON on stdout.

    Not through Rich, which pretty-prints, highlights and wraps at the terminal width.
    """
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def print_audit(rep: dict) -> None:
    table = Table(title="helios audit")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("accepted requests", str(rep["accepted"]))
    table.add_row("imps", str(rep["imps"]))
    for k, v in rep["outcomes"].items():
        table.add_row(f"outcomes {k}", str(v))
    table.add_row("dead letters", str(rep["dead_letters"]))
    ok = "[green]" if rep["missing"] == 0 else "[red]"
    table.add_row("wire: missing", f"{ok}{rep['missing']}")
    ok = "[green]" if rep["duplicated"] == 0 else "[yellow]"
    table.add_row("wire: duplicated (allowed: at-least-once)", f"{ok}{rep['duplicated']}")
    wh = rep.get("warehouse")
    if wh is not None and not wh.get("checked"):
        table.add_row("warehouse", f"[yellow]not checked: {wh['reason']}")
    elif wh is not None:
        table.add_row("warehouse: rows in outcomes", str(wh["rows"]))
        for k in ("missing", "duplicated"):
            ok = "[green]" if wh[k] == 0 else "[red]"
            table.add_row(f"warehouse: {k} (must be 0)", f"{ok}{wh[k]}")
    out.print(table)
