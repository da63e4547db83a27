"""``helios audit`` on the wire and in the warehouse, against a real broker and a real
DuckDB warehouse filled by the real pipeline (the session's ``pipeline`` fixture).

The guarantee it checks (DESIGN.md, accounting invariant): nothing missing on the wire or in
``outcomes``, nothing doubled in ``outcomes``; wire duplicates are allowed (at-least-once)
and must not fail the audit. Each case plants one fault in a private copy of the topics or
of the warehouse file and runs the real CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import duckdb
import orjson
import pytest

from ingest_services.common.kafka import ensure_topics
from ingest_services.contracts import messages as m
from ingest_services.settings import Settings, load_settings
from tests.integration.conftest import produce, read_all

pytestmark = pytest.mark.integration


def fresh_topics(s: Settings) -> Settings:
    tag = uuid.uuid4().hex[:10]
    s2 = load_settings(kafka_bootstrap=s.kafka_bootstrap, topic_requests=f"req-{tag}",
                       topic_responses=f"resp-{tag}", topic_outcomes=f"out-{tag}",
                       partitions=3)
    ensure_topics(s2)
    return s2


@pytest.fixture(scope="module")
def wire(pipeline) -> dict:
    """The pipeline's requests and outcomes, each key once, copied into fresh topics (the
    pipeline's own topics may hold at-least-once duplicates; this copy holds none)."""
    s = pipeline["settings"]
    reqs = {orjson.loads(x.value())["rid"]: x.value()
            for x in read_all(s, s.topic_requests, idle_s=1.0)}
    outs: dict[tuple[str, str], bytes] = {}
    for x in read_all(s, s.topic_outcomes, expect=pipeline["imps"]):
        o = orjson.loads(x.value())
        outs[(o["rid"], o["imp_id"])] = x.value()
    assert len(outs) == pipeline["imps"]
    return {"requests": reqs, "outcomes": outs, "settings": s}


def copy_wire(wire: dict, extra_outcomes: list[bytes] = (),
              extra_requests: list[tuple[str, bytes]] = ()) -> Settings:
    s = fresh_topics(wire["settings"])
    produce(s, s.topic_requests, [*wire["requests"].items(), *extra_requests])
    values = [*wire["outcomes"].values(), *extra_outcomes]
    produce(s, s.topic_outcomes, [(orjson.loads(v)["rid"], v) for v in values])
    return s


@pytest.fixture
def warehouse(pipeline, tmp_path) -> Path:
    """A private copy of the pipeline's warehouse file, free to corrupt."""
    db = tmp_path / "wh.duckdb"
    shutil.copy(pipeline["db"], db)
    return db


LAST_STDERR: list[str] = []  # stderr of the last audit run


def audit(s: Settings, home: Path, warehouse: Path, wait: float = 10, text: bool = False
          ) -> tuple[int, dict | str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELIOS_")}
    env.update(HELIOS_HOME=str(home), HELIOS_TOPIC_REQUESTS=s.topic_requests,
               HELIOS_TOPIC_RESPONSES=s.topic_responses, HELIOS_TOPIC_OUTCOMES=s.topic_outcomes,
               COLUMNS="200")
    args = ["audit", "--wait", str(wait), "--bootstrap", s.kafka_bootstrap,
            "--warehouse", str(warehouse), *([] if text else ["--json"])]
    proc = subprocess.run([sys.executable, "-m", "helios_pipeline.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr and proc.stdout, proc.stderr[-3000:]
    LAST_STDERR[:] = [proc.stderr]
    return proc.returncode, (proc.stdout if text else json.loads(proc.stdout))


def test_wire_duplicate_is_labelled_allowed_and_passes(wire, warehouse, tmp_path, pipeline):
    twice = next(iter(wire["outcomes"].values()))
    s = copy_wire(wire, extra_outcomes=[twice])
    code, rep = audit(s, tmp_path, warehouse)
    assert code == 0, rep
    assert rep["ok"] is True
    assert rep["duplicated"] == 1 and rep["wire"]["duplicated"] == 1
    assert rep["wire"]["duplicates_allowed"] is True
    assert rep["missing"] == 0 and rep["wire"]["missing"] == 0
    wh = rep["warehouse"]
    assert wh["checked"] and wh["missing"] == 0 and wh["duplicated"] == 0
    assert wh["rows"] == pipeline["imps"] == rep["imps"]
    # the same in the table a person reads: the duplicate is labelled, not an error
    code, table = audit(s, tmp_path, warehouse, text=True)
    assert code == 0, table
    assert "duplicated (allowed: at-least-once)" in table and "warehouse: duplicated" in table


def test_a_read_that_did_not_reach_the_end_fails_instead_of_passing(wire, warehouse):
    """Found by the one-hour soak: its audit read nothing from a broker too busy to answer
    within the wait, saw nothing missing among the nothing it read, and passed. A read that
    stops before the watermarks found at its start must fail, and pass once it gets there."""
    from helios_pipeline.audit import Auditor, audit_warehouse, verdict

    s = copy_wire(wire)
    auditor = Auditor(s)
    try:
        rep = auditor.drain(0, idle_s=0)  # gives up before reading anything
        assert rep["accepted"] == 0 and rep["missing"] == 0  # what passed before
        assert rep["drained"] is False
        assert rep["wire"]["read_complete"] is False
        assert 0 < rep["wire"]["unread_at_start"] <= len(wire["requests"]) + len(wire["outcomes"])
        rep["warehouse"] = audit_warehouse(auditor, warehouse, 10)
        assert verdict(rep) is False
        rep = auditor.drain(30)
        assert rep["drained"] is True and rep["wire"]["read_complete"] is True
        assert rep["accepted"] == len(wire["requests"])
        rep["warehouse"] = audit_warehouse(auditor, warehouse, 10)
        assert verdict(rep) is True
    finally:
        auditor.close()


def test_planted_duplicate_row_in_outcomes_fails(wire, warehouse, tmp_path):
    s = copy_wire(wire)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("INSERT INTO outcomes SELECT * FROM outcomes LIMIT 1")
    code, rep = audit(s, tmp_path, warehouse)
    assert code == 1, rep
    assert rep["ok"] is False
    assert rep["warehouse"]["duplicated"] == 1 and rep["warehouse"]["missing"] == 0
    assert rep["duplicated"] == 0 and rep["missing"] == 0  # the wire is clean


def test_row_missing_in_outcomes_fails(wire, warehouse, tmp_path):
    s = copy_wire(wire)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("DELETE FROM outcomes WHERE rid = (SELECT min(rid) FROM outcomes) "
                    "AND imp_id = (SELECT min(imp_id) FROM outcomes "
                    "WHERE rid = (SELECT min(rid) FROM outcomes))")
    code, rep = audit(s, tmp_path, warehouse, wait=3)
    assert code == 1, rep
    assert rep["warehouse"]["missing"] == 1 and rep["warehouse"]["duplicated"] == 0
    assert rep["missing"] == 0
    assert "1 accepted imps are on the wire but not in outcomes" in LAST_STDERR[0]


def test_outcome_missing_on_the_wire_fails_in_both(wire, warehouse, tmp_path):
    rid = m.new_rid()
    lost = m.encode_request(rid, b'{"id":"lost","imp":[{"id":"1","banner":{}}]}', ["1"],
                            m.now_ms())
    s = copy_wire(wire, extra_requests=[(rid, lost)])
    code, rep = audit(s, tmp_path, warehouse, wait=3)
    assert code == 1, rep
    assert rep["missing"] == 1 and rep["warehouse"]["missing"] == 1


def test_no_warehouse_file_is_said_not_checked(wire, tmp_path):
    s = copy_wire(wire)
    code, rep = audit(s, tmp_path, tmp_path / "absent.duckdb")
    assert code == 0, rep
    assert rep["warehouse"]["checked"] is False
    assert "no warehouse file" in rep["warehouse"]["reason"]


def test_audit_with_the_broker_down_says_so_in_one_line(tmp_path):
    """The CLI's bad-situation rule: one line naming the problem, exit 2, no traceback — not
    buried under librdkafka's connect-failure lines (one every 50 ms before the fix)."""
    from helios_pipeline.stack.probes import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("HELIOS_")}
    env.update(HELIOS_HOME=str(tmp_path), HELIOS_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}")
    got = subprocess.run([sys.executable, "-m", "helios_pipeline.cli", "audit", "--json",
                          "--wait", "1"], env=env, capture_output=True, text=True, timeout=120)
    lines = [ln for ln in (got.stdout + got.stderr).splitlines() if ln.strip()]
    assert got.returncode == 2
    assert len(lines) == 1, lines[:5]
    assert lines[0].startswith("error: cannot read the topics at 127.0.0.1:")
    assert "HELIOS_KAFKA_BOOTSTRAP" in lines[0] and "is the stack up?" in lines[0]
