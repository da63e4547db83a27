"""Partial dependency audit for machines where pip-audit cannot run (issue #9).

pip-audit asks PyPI about one release at a time (``/pypi/<name>/<version>/json``); some
mirrors serve only the project JSON (``/pypi/<name>/json``), whose ``vulnerabilities`` are
those of the project's latest release. So this checks what that endpoint can answer: every
installed distribution (Helios itself excluded) that is at its latest release, and lists
the rest as not checkable here. Findings not in .ci/pip-audit-ignore fail (exit 1), as
pip-audit's would; a distribution PyPI could not be asked about is listed, never passed.
Run by .ci/audit_deps when pip-audit's endpoint is unreachable.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import sys
import urllib.request
from importlib import metadata
from pathlib import Path

IGNORE = Path(__file__).with_name("pip-audit-ignore")


def ask(name: str) -> tuple[str, str | None, list[dict], str | None]:
    try:
        with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=20) as r:
            j = json.load(r)
        return name, j["info"]["version"], j.get("vulnerabilities") or [], None
    except Exception as exc:  # reported below, per distribution
        return name, None, [], f"{type(exc).__name__}: {exc}"


def main() -> int:
    installed = {d.metadata["Name"].lower(): d.version for d in metadata.distributions()
                 if d.metadata["Name"] and d.metadata["Name"].lower() != "helios"}
    ignored = {ln.split()[0] for ln in IGNORE.read_text().splitlines()
               if ln.strip() and not ln.startswith("#")} if IGNORE.exists() else set()
    latest, older, errors, findings = [], [], [], []
    with cf.ThreadPoolExecutor(16) as pool:
        for name, newest, vulns, err in pool.map(ask, sorted(installed)):
            have = installed[name]
            if err:
                errors.append(f"{name} {have}: {err}")
            elif newest != have:
                older.append(f"{name} {have} (latest {newest})")
            else:
                latest.append(name)
                findings += [f"{name} {have}: {v.get('id')} (fixed in {v.get('fixed_in')})"
                             for v in vulns if v.get("id") not in ignored
                             and not ignored & set(v.get("aliases") or [])]
    print(f"partial audit (PyPI project JSON): {len(latest)} of {len(installed)} installed "
          f"distributions are at their latest release: {len(findings)} advisories; "
          f"{len(older)} older ones not checkable here; {len(errors)} not answered")
    for line in [*findings, *(f"not checkable: {o}" for o in older),
                 *(f"not answered: {e}" for e in errors)]:
        print(f"  {line}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
