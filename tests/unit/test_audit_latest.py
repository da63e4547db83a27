""".ci/audit_latest.py, the partial audit run where pip-audit cannot reach PyPI's
per-release JSON: a planted advisory on a distribution at its latest release fails it,
unless ignored; older releases and unanswered asks are listed, never passed as clean."""

import importlib.util
from importlib import metadata
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "audit_latest.py"


@pytest.fixture
def audit(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("audit_latest", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    have = {"pkg-a": "1.0", "pkg-b": "2.0", "pkg-c": "3.0"}

    class Dist:
        def __init__(self, name: str) -> None:
            self.metadata = {"Name": name}
            self.version = have[name]

    monkeypatch.setattr(metadata, "distributions", lambda: [Dist(n) for n in have])
    answers = {"pkg-a": ("1.0", [{"id": "GHSA-xxxx", "aliases": ["CVE-1"], "fixed_in": ["1.1"]}],
                         None),
               "pkg-b": ("2.5", [], None),  # older than the latest: not checkable here
               "pkg-c": (None, [], "URLError: no route")}
    monkeypatch.setattr(mod, "ask", lambda n: (n, *answers[n]))
    mod.IGNORE = tmp_path / "ignore"
    return mod


def test_an_advisory_on_a_latest_release_fails_and_the_rest_is_listed(audit, capsys):
    assert audit.main() == 1
    out = capsys.readouterr().out
    assert "1 of 3 installed distributions are at their latest release: 1 advisories" in out
    assert "pkg-a 1.0: GHSA-xxxx" in out
    assert "not checkable: pkg-b 2.0 (latest 2.5)" in out
    assert "not answered: pkg-c 3.0: URLError" in out


@pytest.mark.parametrize("listed", ["GHSA-xxxx", "CVE-1"])
def test_an_ignored_advisory_passes(audit, listed):
    audit.IGNORE.write_text(f"# why: docs/reliability.md\n{listed} accepted for the test\n")
    assert audit.main() == 0
