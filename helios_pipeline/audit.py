"""``helios audit``: checks the accounting invariant on the wire and in the warehouse.

Every imp of every accepted request must end as exactly one outcome, or its request as
exactly one dead letter. The wire (the topics) is read directly: the reader assigns
partitions itself and commits nothing, so it never disturbs the services' consumer groups.
Tansu's high watermarks are only a lower bound of what a partition holds, so "caught up"
means: past the watermarks found when the audit began, and no new message for ``idle_s``
(and the pipeline is drained when, in addition, nothing is missing). A read that did not get
past those watermarks in time proves nothing and fails the verdict.

Delivery is at-least-once on the wire (a service killed between the broker's ack and its
offset commit produces its outputs again), so wire duplicates are allowed and reported as
such; the warehouse's ``outcomes`` collapses them by key and must hold exactly one row per
accepted imp. So the verdict (:func:`verdict`) fails on anything missing anywhere and on a
doubled key in the warehouse, never on wire duplicates alone. The warehouse is read by one
small function (:func:`read_warehouse`), the only place that knows its backend.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from ingest_services.common.kafka import high_watermarks, reader_config
from ingest_services.settings import Settings


@dataclass
class Ledger:
    requests: dict[str, list[str]] = field(default_factory=dict)
    duplicate_requests: int = 0
    outcomes: Counter = field(default_factory=Counter)  # (rid, imp_id) -> count
    kinds: Counter = field(default_factory=Counter)
    dead: Counter = field(default_factory=Counter)  # (topic, rid) -> count
    dead_by_topic: Counter = field(default_factory=Counter)
    bids: int = 0
    spend_cpm: float = 0.0
    unreadable: int = 0



class Auditor:
    def __init__(self, s: Settings, on_outcome: Callable[[dict], None] | None = None) -> None:
        """``on_outcome`` sees every parsed outcome record (e.g. to measure latency)."""
        self.s = s
        self.on_outcome = on_outcome
        self.ledger = Ledger()
        self.consumer = Consumer(reader_config(s, "helios-audit"))
        self.topics = {
            s.topic_requests: self._on_request,
            s.topic_outcomes: self._on_outcome,
            **{s.dlq(t): self._on_dead for t in
               (s.topic_requests, s.topic_responses, s.topic_outcomes)},
        }
        md = self.consumer.list_topics(timeout=10)
        parts = []
        for topic in self.topics:
            meta = md.topics.get(topic)
            if meta is None or meta.error is not None:
                raise RuntimeError(f"topic {topic} does not exist on {s.kafka_bootstrap}")
            parts += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        self.consumer.assign(parts)
        # what was on each partition when the audit began (a lower bound on Tansu): the
        # read is complete only once it got that far. "No new message for idle_s" alone
        # passed a soak's audit that had read nothing from a broker too busy to answer in
        # time (every key then counted as present, the warehouse checked against none)
        self.start_watermarks = high_watermarks(
            self.consumer, [(tp.topic, tp.partition) for tp in parts])

    def close(self) -> None:
        self.consumer.close()

    def _on_request(self, msg) -> None:
        try:
            env = orjson.loads(msg.value())
            rid, imps = env["rid"], [str(i) for i in env["imp_ids"]]
        except Exception:
            self.ledger.unreadable += 1
            return
        if rid in self.ledger.requests:
            self.ledger.duplicate_requests += 1
        self.ledger.requests[rid] = imps

    def _on_outcome(self, msg) -> None:
        try:
            o = orjson.loads(msg.value())
            key = (o["rid"], str(o["imp_id"]))
            kind = o["outcome"]
        except Exception:
            self.ledger.unreadable += 1
            return
        if self.on_outcome is not None:
            self.on_outcome(o)
        led = self.ledger
        led.outcomes[key] += 1
        led.kinds[kind] += 1
        if kind in ("won", "lost"):
            led.bids += 1
        if kind == "won":
            led.spend_cpm += float(o.get("clearing_price_usd") or 0.0)

    def _on_dead(self, msg) -> None:
        key = msg.key().decode(errors="replace") if msg.key() else ""
        self.ledger.dead[(msg.topic(), key)] += 1
        self.ledger.dead_by_topic[msg.topic()] += 1

    def read(self, seconds: float) -> int:
        """Consume whatever arrives within ``seconds``; returns how many messages were read."""
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            batch = self.consumer.consume(5000, timeout=0.2)
            for msg in batch:
                if msg.error():
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        raise RuntimeError(f"audit read failed: {msg.error()}")
                    continue
                self.topics[msg.topic()](msg)
                n += 1
        return n

    def behind(self) -> int:
        """Messages present when the audit began that it has not read yet (0: complete)."""
        parts = [TopicPartition(t, p) for (t, p) in self.start_watermarks]
        at = {(tp.topic, tp.partition): max(tp.offset, 0)
              for tp in self.consumer.position(parts)}
        return sum(max(0, high - at[key]) for key, high in self.start_watermarks.items())

    def report(self) -> dict:
        led = self.ledger
        dead_rids = {rid for (_topic, rid) in led.dead}
        imps = 0
        missing = 0
        for rid, imp_ids in led.requests.items():
            imps += len(imp_ids)
            if rid in dead_rids:
                continue
            missing += sum(1 for i in imp_ids if (rid, i) not in led.outcomes)
        duplicated = sum(1 for c in led.outcomes.values() if c > 1)
        duplicated += sum(1 for c in led.dead.values() if c > 1)
        behind = self.behind()
        wire = {"missing": missing, "duplicated": duplicated, "duplicates_allowed": True,
                "read_complete": behind == 0, "unread_at_start": behind,
                "note": "at-least-once delivery: a key produced twice on the wire is one row "
                        "in the warehouse"}
        wins = led.kinds.get("won", 0)
        spend = led.spend_cpm / 1000
        return {
            "accepted": len(led.requests),
            "imps": imps,
            "outcomes": {
                "total": sum(led.outcomes.values()),
                "won": wins,
                "lost": led.kinds.get("lost", 0),
                "nobid": led.kinds.get("nobid", 0),
            },
            "dead_letters": sum(led.dead_by_topic.values()),
            "dead_letters_by_topic": dict(led.dead_by_topic),
            "missing": missing,  # on the wire (kept from before `wire`, same figure)
            "duplicated": duplicated,  # on the wire: allowed (at-least-once)
            "wire": wire,
            "duplicate_requests": led.duplicate_requests,
            "unreadable": led.unreadable,
            "kpis": {
                "bids": led.bids,
                "wins": wins,
                "bid_rate": round(led.bids / imps, 4) if imps else None,
                "win_rate": round(wins / led.bids, 4) if led.bids else None,
                "spend_usd": round(spend, 4),
                "ecpm_usd": round(spend / wins * 1000, 4) if wins else None,
            },
        }

    def expected_keys(self) -> list[tuple[str, str]]:
        """(rid, imp_id) of every accepted imp that must be a row in ``outcomes``: the imps
        of every accepted request that did not end as a dead letter."""
        dead_rids = {rid for (_topic, rid) in self.ledger.dead}
        return [(rid, i) for rid, imps in self.ledger.requests.items() if rid not in dead_rids
                for i in imps]

    def drain(self, wait_s: float, idle_s: float = 2.0) -> dict:
        """Read until caught up and nothing is missing, or until ``wait_s`` runs out."""
        deadline = time.monotonic() + wait_s
        while True:
            got = self.read(idle_s)
            rep = self.report()
            caught_up = got == 0 and rep["missing"] == 0 and rep["wire"]["read_complete"]
            if caught_up or time.monotonic() >= deadline:
                rep["drained"] = caught_up
                return rep


# ------------------------------------------------------------------------------ warehouse
def is_postgres(location: str | Path) -> bool:
    """The warehouse in stack.json / HELIOS_WAREHOUSE_*: a DuckDB file or a PostgreSQL URI."""
    return str(location).startswith(("postgresql://", "postgres://"))


def read_warehouse(location: str | Path, keys: list[tuple[str, str]],
                   lock_wait_s: float = 10.0) -> dict:
    """``outcomes`` against the accepted imps: rows, missing keys, doubled keys.

    The one place that reads the warehouse: a DuckDB file (read-only connection; a Dagster
    run holds the file's lock for seconds at most, so the connection is retried meanwhile)
    or the PostgreSQL warehouse (``--warehouse postgres``: a URI). ``missing``: keys in
    ``keys`` with no row; ``duplicated``: keys (any, not only these) with more than one
    row. A warehouse without an ``outcomes`` table has every key missing.
    """
    if is_postgres(location):
        return _read_postgres(str(location), keys)
    path = Path(location)
    import pyarrow as pa

    from helios_pipeline.warehouse.duckdb_file import connect_waiting

    con = connect_waiting(str(path), read_only=True, wait_s=lock_wait_s)
    try:
        has = con.execute("SELECT count(*) FROM information_schema.tables "
                          "WHERE table_name = 'outcomes'").fetchall()[0][0]
        if not has:
            return {"rows": 0, "missing": len(keys), "duplicated": 0}
        expected = pa.table({"rid": [k[0] for k in keys], "imp_id": [k[1] for k in keys]})
        con.register("audit_expected", expected)
        rows, duplicated = con.execute(
            "SELECT coalesce(sum(n), 0), count(*) FILTER (WHERE n > 1) "
            "FROM (SELECT count(*) AS n FROM outcomes GROUP BY rid, imp_id)").fetchall()[0]
        missing = con.execute("SELECT count(*) FROM audit_expected e "
                              "ANTI JOIN outcomes o USING (rid, imp_id)").fetchall()[0][0]
        return {"rows": int(rows), "missing": int(missing), "duplicated": int(duplicated)}
    finally:
        con.close()


def _read_postgres(dsn: str, keys: list[tuple[str, str]]) -> dict:
    """:func:`read_warehouse` on PostgreSQL: the expected keys COPYed into a temporary
    table, the same two questions asked there; nothing is written to the warehouse."""
    import csv
    import io

    import psycopg2

    con = psycopg2.connect(dsn)
    try:
        cur = con.cursor()
        cur.execute("SELECT to_regclass('outcomes') IS NOT NULL")
        if not cur.fetchone()[0]:
            return {"rows": 0, "missing": len(keys), "duplicated": 0}
        cur.execute("CREATE TEMP TABLE audit_expected (rid TEXT, imp_id TEXT) ON COMMIT DROP")
        buf = io.StringIO()
        csv.writer(buf).writerows(keys)
        buf.seek(0)
        cur.copy_expert("COPY audit_expected FROM STDIN WITH (FORMAT csv)", buf)
        cur.execute("SELECT coalesce(sum(n), 0), count(*) FILTER (WHERE n > 1) "
                    "FROM (SELECT count(*) AS n FROM outcomes GROUP BY rid, imp_id) t")
        rows, duplicated = cur.fetchone()
        cur.execute("SELECT count(*) FROM audit_expected e WHERE NOT EXISTS "
                    "(SELECT 1 FROM outcomes o WHERE o.rid = e.rid AND o.imp_id = e.imp_id)")
        missing = cur.fetchone()[0]
        return {"rows": int(rows), "missing": int(missing), "duplicated": int(duplicated)}
    finally:
        con.rollback()
        con.close()


def audit_warehouse(auditor: Auditor, path: str | Path, wait_s: float,
                    poll_s: float = 1.0) -> dict:
    """The warehouse figures, polled until nothing is missing or ``wait_s`` runs out (the
    ingest runs on a sensor, so the warehouse trails the wire by a few seconds). No DuckDB
    file: not checked, and said so. A PostgreSQL URI is shown without its password."""
    shown = _without_password(str(path))
    if not is_postgres(path) and not Path(path).exists():
        return {"checked": False, "path": shown,
                "reason": f"no warehouse file at {path} (Dagster not run yet?)"}
    keys = auditor.expected_keys()
    deadline = time.monotonic() + wait_s
    while True:
        figures = read_warehouse(path, keys)
        if figures["missing"] == 0 or time.monotonic() >= deadline:
            return {"checked": True, "path": shown, "table": "outcomes", **figures}
        time.sleep(poll_s)


def _without_password(location: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    if not is_postgres(location):
        return location
    parts = urlsplit(location)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return location


def verdict(rep: dict) -> bool:
    """The guarantee: nothing missing on the wire or in the warehouse, nothing doubled in
    the warehouse. Wire duplicates alone pass (at-least-once delivery)."""
    wh = rep.get("warehouse") or {}
    if rep["missing"] or rep.get("wire", {}).get("read_complete") is False:
        return False  # an unfinished read proves nothing: keys it did not see are unchecked
    return not (wh.get("checked") and (wh["missing"] or wh["duplicated"]))
