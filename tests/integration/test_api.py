"""The analytics API against real data: the real pipeline (gateway envelopes → bidder →
auctioneer on Tansu → exactly-once ingest → ``serving_snapshot`` asset) for the small
warehouse, and a bulk SQL loader for the large one. Every answer is checked against an
independent SQL computation over the warehouse's ``outcomes`` table."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import orjson
import pytest
from fastapi.testclient import TestClient

from helios_pipeline.api.app import create_app
from helios_pipeline.serving.snapshot import publish
from helios_pipeline.warehouse import tables
from ingest_services.settings import ApiSettings, load_settings
from tests.integration.conftest import read_all

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(pipeline):
    app = create_app(load_settings(ApiSettings, serving_path=pipeline["serving"]))
    with TestClient(app) as c:
        yield c


def sql(db: Path, query: str, params: list | None = None):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(query, params or []).fetchall()
    finally:
        con.close()


def expected_stats(db: Path, where: str = "", params: list | None = None) -> dict:
    """Stats over the warehouse table, written out independently of helios_pipeline.api."""
    (total, wins, losses, nobids, enriched, bid_sum, clearing, won_bid, passes) = sql(db, f"""
        SELECT count(*), count(*) FILTER (outcome = 'won'), count(*) FILTER (outcome = 'lost'),
               count(*) FILTER (outcome = 'nobid'), count(*) FILTER (enriched),
               sum(bid_price_usd) FILTER (outcome <> 'nobid'),
               sum(clearing_price_usd) FILTER (outcome = 'won'),
               sum(bid_price_usd) FILTER (outcome = 'won'),
               count(*) FILTER (outcome <> 'nobid' AND bid_price_usd >= floor_usd)
        FROM outcomes o LEFT JOIN bid_requests r USING (rid, imp_id) {where}""", params)[0]
    bids = wins + losses
    return {"total_outcomes": total, "total_wins": wins, "total_losses": losses,
            "no_bid_count": nobids, "enriched_count": enriched,
            "win_rate": pytest.approx(100 * wins / bids if bids else 0, abs=1e-3),
            "total_revenue": pytest.approx((clearing or 0) / 1000, abs=1e-6),
            "average_bid_price": pytest.approx(bid_sum / bids) if bids else None,
            "ecpm": pytest.approx(clearing / wins) if wins else None,
            "shading_ratio": pytest.approx(clearing / won_bid) if wins else None,
            "floor_pass_rate": pytest.approx(100 * passes / bids if bids else 0, abs=1e-3),
            "bid_rate": pytest.approx(100 * bids / total if total else 0, abs=1e-3)}


def test_stats_equal_sql_over_the_warehouse(client, pipeline):
    got = client.get("/api/outcomes/stats/").json()
    assert got["total_outcomes"] == pipeline["imps"] > 0
    exp = expected_stats(pipeline["db"])
    assert {k: got[k] for k in exp} == exp
    assert got["total_wins"] > 0 and got["total_losses"] > 0 and got["no_bid_count"] > 0


@pytest.mark.parametrize(("params", "where", "args"), [
    ({"outcome": "won"}, "WHERE outcome = 'won'", []),
    ({"win_status": "false"}, "WHERE outcome <> 'won'", []),
    ({"enriched": "true"}, "WHERE enriched", []),
    ({"enriched": "false"}, "WHERE NOT coalesce(enriched, false)", []),
    ({"media_type": "video"}, "WHERE o.media = 'video'", []),
    ({"segment": "unknown"}, "WHERE segment = 'unknown'", []),
    ({"loss_reason": "102"}, "WHERE loss_reason = 102", []),
    ({"site_domain": "story.example.com"}, "WHERE o.site_domain = 'story.example.com'", []),
    ({"min_price": "0.5"}, "WHERE bid_price_usd >= 0.5", []),
    ({"min_price": "0.5", "max_price": "1.0"}, "WHERE bid_price_usd BETWEEN 0.5 AND 1.0", []),
    ({"user_id": "u00000001"}, "WHERE r.user_id = 'u00000001'", []),
    ({"date_from": "2000-01-01", "date_to": "2000-01-02"}, "WHERE day < DATE '2000-01-03'", []),
])
def test_every_filter_on_stats_equals_sql(client, pipeline, params, where, args):
    got = client.get("/api/outcomes/stats/", params=params)
    assert got.status_code == 200, got.text
    exp = expected_stats(pipeline["db"], where, args)
    assert {k: got.json()[k] for k in exp} == exp
    page = client.get("/api/outcomes/", params={**params, "page_size": 1000}).json()
    assert page["count"] == exp["total_outcomes"] == len(page["results"])


def test_pagination_edges_and_links(client, pipeline):
    n = pipeline["imps"]
    first = client.get("/api/outcomes/", params={"page_size": 100}).json()
    assert first["count"] == n and len(first["results"]) == 100 and first["previous"] is None
    last_page = (n + 99) // 100
    last = client.get("/api/outcomes/", params={"page_size": 100, "page": last_page}).json()
    assert len(last["results"]) == n - 100 * (last_page - 1) and last["next"] is None
    assert f"page={last_page - 1}" in last["previous"]
    beyond = client.get("/api/outcomes/", params={"page": last_page + 5}).json()
    assert beyond["results"] == [] and beyond["count"] == n
    seen = set()
    url = "/api/outcomes/?page_size=250"
    while url:
        body = client.get(url).json()
        seen |= {r["id"] for r in body["results"]}
        url = body["next"]
    assert len(seen) == n  # every outcome once, across pages
    default = client.get("/api/outcomes/").json()
    assert len(default["results"]) == min(100, n)


@pytest.mark.parametrize(("ordering", "key", "reverse"), [
    ("timestamp", "timestamp", False), ("-timestamp", "timestamp", True),
    ("bid_price", "bid_price", False), ("-win_price", "win_price", True)])
def test_ordering(client, ordering, key, reverse):
    rows = client.get("/api/outcomes/", params={"ordering": ordering, "page_size": 1000}
                      ).json()["results"]
    values = [r[key] for r in rows if r[key] is not None]
    assert values and values == sorted(values, reverse=reverse)
    assert all(r[key] is None for r in rows[len(values):])  # nulls last


def test_winners_are_won_outcomes_only(client, pipeline):
    body = client.get("/api/outcomes/winners/", params={"page_size": 1000}).json()
    wins = sql(pipeline["db"], "SELECT count(*) FROM outcomes WHERE outcome = 'won'")[0][0]
    assert body["count"] == wins == len(body["results"])
    assert all(r["win_status"] and r["outcome"] == "won" and r["win_price"] is not None
               for r in body["results"])


def test_one_outcome_has_every_field_filled_from_the_warehouse(client, pipeline):
    rid, imp = sql(pipeline["db"], "SELECT rid, imp_id FROM outcomes WHERE outcome = 'won' "
                                   "LIMIT 1")[0]
    got = client.get(f"/api/outcomes/{rid}:{imp}/")
    assert got.status_code == 200
    o = got.json()
    row = sql(pipeline["db"], "SELECT o.clearing_price_usd, o.bid_price_usd, r.user_id, o.media,"
              " o.segment FROM outcomes o JOIN bid_requests r USING (rid, imp_id) "
              "WHERE rid = ? AND imp_id = ?", [rid, imp])[0]
    assert (o["win_price"], o["bid_price"], o["user_id"], o["media_type"], o["segment"]) == row
    for key in ("id", "timestamp", "domain", "media_type", "bid_price", "win_price", "outcome"):
        assert o[key] not in (None, ""), key  # the old dashboard showed empty columns


def test_daily_stats_and_group_by(client, pipeline):
    days = client.get("/api/outcomes/daily_stats/").json()
    assert sum(d["total"] for d in days) == pipeline["imps"]
    assert set(days[0]) == {"date", "total", "wins", "revenue", "avg_win_price", "win_rate",
                            "ecpm", "bids", "losses"}
    for group_by, column in (("site", "o.site_domain"), ("segment", "segment"),
                             ("media_type", "o.media")):
        rows = client.get("/api/outcomes/daily_stats/", params={"group_by": group_by}).json()
        exp = dict(sql(pipeline["db"], f"SELECT {column}, count(*) FROM outcomes o GROUP BY 1"))
        assert {r["group"]: r["total"] for r in rows} == exp
    hours = client.get("/api/outcomes/daily_stats/", params={"group_by": "hour"}).json()
    assert sum(r["total"] for r in hours) == pipeline["imps"]
    assert all(0 <= r["group"] <= 23 for r in hours)


def test_request_story_matches_the_topics(client, pipeline):
    s, rid = pipeline["settings"], pipeline["my_rid"]
    story = client.get(f"/api/requests/{rid}/").json()
    outs = {o["imp_id"]: o for o in (orjson.loads(m.value())
                                     for m in read_all(s, s.topic_outcomes))
            if o["rid"] == rid}
    [resp] = [r for r in (orjson.loads(m.value()) for m in read_all(s, s.topic_responses))
              if r["rid"] == rid]
    assert story["request_id"] == "story-1"
    assert story["context"]["site_domain"] == "story.example.com"
    assert story["context"]["user_id"] == "u00000001"
    assert story["context"]["auction_type"] == 1
    assert story["profile"]["status"] == resp["profile"]
    assert [i["imp_id"] for i in story["imps"]] == ["a", "b"]
    for imp in story["imps"]:
        out = outs[imp["imp_id"]]
        assert imp["outcome"] == out["outcome"]
        assert imp["loss_reason"] == out["loss_reason"]
        assert imp["auction"]["clearing_price"] == out["clearing_price_usd"]
        assert imp["auction"]["competing_price"] == out["competitor_price_usd"]
    b = story["imps"][1]  # floor 99 USD: the bidder passes
    assert b["bid"] is None and b["nobid_reason"] == "below_floor" and b["outcome"] == "nobid"


@pytest.mark.parametrize(("query", "param"), [
    ("min_price=abc", "min_price"), ("max_price=-1", "max_price"),
    ("ordering=price", "ordering"), ("ordering=-foo", "ordering"), ("page=0", "page"),
    ("page=x", "page"), ("page_size=1000000", "page_size"), ("page_size=0", "page_size"),
    ("date_from=2026-12-03&date_to=2026-12-01", "date_to"), ("date_from=yesterday", "date_from"),
    ("media_type=tv", "media_type"), ("outcome=maybe", "outcome"), ("enriched=perhaps", "enriched"),
    ("min_price=2&max_price=1", "max_price"), ("loss_reason=x", "loss_reason"),
])
def test_bad_parameters_are_422_naming_the_parameter(client, query, param):
    for path in ("/api/outcomes/", "/api/outcomes/stats/", "/api/outcomes/winners/",
                 "/api/outcomes/daily_stats/"):
        r = client.get(f"{path}?{query}")
        if not path.endswith(("/outcomes/", "/winners/")) and param in (
                "ordering", "page", "page_size"):
            continue  # paging and ordering are parameters of the lists only
        assert r.status_code == 422, (path, query, r.text)
        assert param in [d["loc"][-1] for d in r.json()["detail"]], r.text
    r = client.get("/api/outcomes/daily_stats/?group_by=week")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "group_by"]


def test_unknown_ids_are_404(client):
    assert client.get("/api/outcomes/nope/").status_code == 404
    assert client.get("/api/outcomes/00000000000000000000000000000000:1/").status_code == 404
    assert client.get("/api/requests/00000000000000000000000000000000/").status_code == 404


def test_every_response_carries_data_as_of_and_probes_work(client, pipeline):
    newest = sql(pipeline["db"], "SELECT strftime(max(decided_at) AT TIME ZONE 'UTC', "
                                 "'%Y-%m-%dT%H:%M:%S.%g') || 'Z' FROM outcomes")[0][0]
    for path in ("/api/outcomes/", "/api/outcomes/stats/", "/healthz", "/readyz", "/metrics",
                 "/api/outcomes/nope/", "/api/outcomes/?page=0"):
        assert client.get(path).headers["X-Data-As-Of"] == newest, path
    assert client.get("/readyz").json() == {"status": "ready"}
    metrics = client.get("/metrics").text
    assert "api_requests_total" in metrics and "serving_snapshot_rows" in metrics
    published = sql(pipeline["serving"], "SELECT epoch(published_at) FROM meta")[0][0]
    exported = [float(ln.split()[1]) for ln in metrics.splitlines()
                if ln.startswith("serving_snapshot_published_timestamp_seconds ")]
    assert exported == [pytest.approx(float(published), abs=1e-3)]
    spec = client.get("/openapi.json").json()
    assert {"/api/outcomes/", "/api/outcomes/{outcome_id}/", "/api/outcomes/stats/",
            "/api/outcomes/winners/", "/api/outcomes/daily_stats/",
            "/api/requests/{rid}/"} <= set(spec["paths"])
    assert spec["components"]["schemas"]["Stats"]["examples"]


def test_no_snapshot_yet_is_an_empty_state_not_an_error(tmp_path):
    app = create_app(load_settings(ApiSettings, serving_path=tmp_path / "none.duckdb"))
    with TestClient(app) as c:
        assert c.get("/api/outcomes/").json() == {"count": 0, "next": None, "previous": None,
                                                  "results": []}
        assert c.get("/api/outcomes/stats/").json()["total_outcomes"] == 0
        assert c.get("/api/outcomes/daily_stats/").json() == []
        assert c.get("/readyz").status_code == 503
        assert c.get("/healthz").status_code == 200
        assert c.get("/api/outcomes/").headers["X-Data-As-Of"] == "none"


def test_a_new_snapshot_is_picked_up_and_old_queries_finish(tmp_path, pipeline):
    """The swap is atomic: a second publish with more rows is seen within the check
    interval, and a cursor opened on the old file still reads it whole."""
    import time

    db = tmp_path / "wh.duckdb"
    shutil.copy(pipeline["db"], db)
    path = tmp_path / "serving.duckdb"
    con = duckdb.connect(str(db))
    publish(con, path)
    store_app = create_app(load_settings(ApiSettings, serving_path=path))
    with TestClient(store_app) as c:
        before = c.get("/api/outcomes/stats/").json()["total_outcomes"]
        old = store_app.state.store.current().cursor()
        con.execute("INSERT INTO outcomes SELECT * REPLACE (rid || 'x' AS rid) FROM outcomes "
                    "LIMIT 7").fetchall()
        publish(con, path)
        time.sleep(1.1)
        assert c.get("/api/outcomes/stats/").json()["total_outcomes"] == before + 7
        assert old.execute("SELECT count(*) FROM outcomes").fetchall()[0][0] == before
    con.close()


def test_swaps_attach_to_one_duckdb_instance_and_detach_the_file_before_last(tmp_path,
                                                                          pipeline):
    """Every publish the store switches to is attached to its one DuckDB instance (an
    instance costs 23 MiB before it reads anything; one per file held two in steady state);
    the file before the current one stays attached for queries in flight, older ones are
    detached and their descriptors closed."""
    import os

    from helios_pipeline.api.store import SnapshotStore

    db = tmp_path / "wh.duckdb"
    shutil.copy(pipeline["db"], db)
    path = tmp_path / "serving.duckdb"
    con = duckdb.connect(str(db))
    publish(con, path)
    store = SnapshotStore(path, 32, check_every_s=0, retire_after_s=60)
    try:
        first = store.current()
        assert first is not None
        base = first.query("SELECT count(*) FROM outcomes")[0][0]
        fds = []  # open descriptors after each swap
        snaps = [first]
        for i in range(1, 5):
            con.execute("INSERT INTO outcomes SELECT * REPLACE (rid || ? AS rid) FROM outcomes "
                        "LIMIT 1", [f"x{i}"]).fetchall()
            publish(con, path)
            snaps.append(store.current())
            assert snaps[-1].con is first.con  # the same instance
            assert snaps[-1].query("SELECT count(*) FROM outcomes")[0][0] == base + i
            assert snaps[-2].query("SELECT count(*) FROM outcomes")[0][0] == base + i - 1
            fds.append(len(os.listdir("/proc/self/fd")))
        attached = sorted(r[0] for r in first.con.execute(
            "SELECT database_name FROM duckdb_databases() WHERE database_name LIKE 'snap%'"
        ).fetchall())
        assert attached == [snaps[-2].alias, snaps[-1].alias]
        with pytest.raises(duckdb.Error, match=f"\"{snaps[-3].alias}\""):
            snaps[-3].cursor()  # detached
        assert fds[1] == fds[2] == fds[3], fds  # past the first swap, one closed per swap
        # once retire_after_s has passed and nothing runs on it, the one before goes too;
        # while a query runs on it, it stays
        import threading
        import time

        store.retire_after_s = 0.0
        slow = threading.Thread(target=snaps[-2].query,
                                args=("SELECT sum(hash(range)) FROM range(200000000)",))
        slow.start()
        while snaps[-2].inflight == 0 and slow.is_alive():
            time.sleep(0.001)
        assert store.current() is snaps[-1] and store._previous is snaps[-2]
        slow.join()
        assert store.current() is snaps[-1]
        attached = [r[0] for r in first.con.execute(
            "SELECT database_name FROM duckdb_databases() WHERE database_name LIKE 'snap%'"
        ).fetchall()]
        assert attached == [snaps[-1].alias]
        assert len(os.listdir("/proc/self/fd")) == fds[3] - 3  # ours, DuckDB's, the stories file's
        assert snaps[-1].query("SELECT count(*) FROM outcomes")[0][0] == base + 4
        # a request that took the detached snapshot earlier is answered from the newer one
        assert snaps[-2].query("SELECT count(*) FROM outcomes")[0][0] == base + 4
        assert snaps[-3].query("SELECT count(*) FROM outcomes")[0][0] == base + 4
    finally:
        store.close()
        con.close()


def test_large_bulk_loaded_warehouse_cube_and_scan_agree_with_sql(tmp_path):
    """200,000 bulk-loaded rows (SQL generator, not the pipeline): stats through the
    pre-aggregated cube and through a row scan both equal SQL over the table."""
    db = tmp_path / "big.duckdb"
    con = duckdb.connect(str(db))
    con.execute(tables.ddl(tables.OutcomeRow)).fetchall()
    con.execute(tables.ddl(tables.BidRequestRow)).fetchall()
    con.execute(BULK, [200_000]).fetchall()
    con.execute("INSERT INTO bid_requests (rid, imp_id, received_at, user_id) "
                "SELECT rid, imp_id, received_at, 'u' || (hash(rid) % 500) FROM outcomes"
                ).fetchall()
    path = tmp_path / "serving.duckdb"
    pub = publish(con, path)
    con.close()
    assert pub.rows == 200_000
    with TestClient(create_app(load_settings(ApiSettings, serving_path=path))) as c:
        for params, where in (({}, ""), ({"segment": "IAB3"}, "WHERE segment = 'IAB3'"),
                              ({"segment": "IAB3", "min_price": "0"},
                               "WHERE segment = 'IAB3' AND bid_price_usd >= 0"),
                              ({"date_from": "2026-11-03", "media_type": "video"},
                               "WHERE day >= DATE '2026-11-03' AND o.media = 'video'")):
            got = c.get("/api/outcomes/stats/", params=params).json()
            exp = expected_stats(db, where)
            assert {k: got[k] for k in exp} == exp, params
        page = c.get("/api/outcomes/", params={"segment": "IAB3", "page_size": 10,
                                               "ordering": "-bid_price"}).json()
        top = sql(db, "SELECT max(bid_price_usd) FROM outcomes WHERE segment = 'IAB3'")[0][0]
        assert page["results"][0]["bid_price"] == top
    # random (md5) rids, not time-ordered: the story lookup is still exact
    sample = [r[0] for r in sql(path, "SELECT rid FROM outcomes USING SAMPLE "
                                      "reservoir(200 ROWS) REPEATABLE (3)")]
    assert _stories_equal_wide_rows(path, sample) == 200
    assert _pages_equal_wide_pages(path) > 0


def _pages_equal_wide_pages(serving: Path) -> int:
    """Pages read in two steps (keys, then the stories file) equal the 27-column query, for
    several filters, orderings and offsets; returns how many rows were compared."""
    from helios_pipeline.api import queries as q
    from helios_pipeline.api.store import SnapshotStore

    store = SnapshotStore(serving, 32)
    n = 0
    try:
        snap = store.current()
        assert snap is not None and snap.stories is not None
        for f in (q.Filters(), q.Filters(segment="IAB3"), q.Filters(outcome="won"),
                  q.Filters(media_type="video", min_price=1.0), q.Filters(segment="nope")):
            where, params = f.where()
            for col, way in (("received_at", "DESC"), ("bid_price_usd", "ASC"),
                             ("clearing_price_usd", "DESC")):
                order = f"{col} {way} NULLS LAST, rid, imp_id"
                for offset in (0, 37):
                    got = snap.page_rows(where, params, order, 25, offset)
                    exp = snap.query(f"SELECT {q.OUTCOME_COLUMNS} FROM outcomes{where} "
                                     f"ORDER BY {order} LIMIT 25 OFFSET {offset}", params)
                    assert [q.outcome_json(r) for r in got] == [q.outcome_json(r) for r in exp]
                    n += len(got)
    finally:
        store.close()
    return n


# Bulk rows shaped like the pipeline's: 5 days, 3 outcomes, 4 media, 25 segments.
BULK = """
INSERT INTO outcomes
SELECT md5(i::VARCHAR), '1', 'q' || i, DATE '2026-11-01' + (i % 5)::INTEGER,
       TIMESTAMPTZ '2026-11-01 00:00:00+00' + INTERVAL (i % 5) DAY + INTERVAL (i % 86400) SECOND,
       NULL, TIMESTAMPTZ '2026-11-01 00:00:00+00' + INTERVAL (i % 5) DAY
             + INTERVAL (i % 86400) SECOND,
       'site' || (i % 50) || '.com', NULL, 'site' || (i % 50) || '.com', 'pub', 2, 'USA',
       ['banner', 'video', 'native', 'audio'][1 + i % 4], 0.2, 0.2, 'USD', 2,
       CASE WHEN i % 10 < 8 THEN (i % 300) / 100.0 END, i % 7 <> 0, 'IAB' || (i % 25), 'found',
       'cr', CASE WHEN i % 10 < 3 THEN 'won' WHEN i % 10 < 8 THEN 'lost' ELSE 'nobid' END,
       CASE WHEN i % 10 < 3 THEN (i % 300) / 150.0 END,
       CASE WHEN i % 10 BETWEEN 3 AND 7 THEN 102 END,
       CASE WHEN i % 10 >= 8 THEN 'below_floor' END, 0.3
FROM range(?) t(i)"""


def test_helios_serve_api_process_serves_the_snapshot_and_the_dashboard(api_server, pipeline):
    import httpx

    stats = httpx.get(f"{api_server}/api/outcomes/stats/", timeout=10)
    assert stats.status_code == 200 and stats.json()["total_outcomes"] == pipeline["imps"]
    assert stats.headers["X-Data-As-Of"].endswith("Z")
    page = httpx.get(f"{api_server}/", timeout=10)
    assert page.status_code == 200 and "<html" in page.text.lower()


def test_helios_serve_api_before_any_snapshot_is_up_but_not_ready(api_empty_server):
    import httpx

    assert httpx.get(f"{api_empty_server}/healthz", timeout=10).status_code == 200
    assert httpx.get(f"{api_empty_server}/readyz", timeout=10).status_code == 503
    assert httpx.get(f"{api_empty_server}/api/outcomes/stats/", timeout=10
                     ).json()["total_outcomes"] == 0


def _stories_equal_wide_rows(serving: Path, rids: list[str] | None = None) -> int:
    """Every story (and outcome) read from the stories file equals the one built from the 27
    ``outcomes`` columns; returns how many requests were compared."""
    from helios_pipeline.api import queries as q
    from helios_pipeline.api.store import SnapshotStore

    store = SnapshotStore(serving, 64)
    try:
        snap = store.current()
        assert snap is not None and snap.stories is not None
        if rids is None:
            rids = [r[0] for r in snap.query("SELECT DISTINCT rid FROM outcomes")]
        for rid in rids:
            narrow, wide = snap.story_rows(rid), snap.wide_story_rows(rid)
            assert narrow and len(narrow) == len(wide), rid
            assert q.story_json(narrow) == q.story_json(wide), rid
            assert [q.outcome_json(r) for r in narrow] == [q.outcome_json(r) for r in wide]
        assert snap.story_rows("0" * 32) == []
    finally:
        store.close()
    return len(rids)


def test_stories_file_gives_the_same_story_as_the_outcome_rows(pipeline, pipeline_pg):
    """The snapshot's stories file (one JSON array per outcome row) against the wide
    rows, for every request, on both warehouse backends' snapshots."""
    assert _stories_equal_wide_rows(pipeline["serving"]) > 0
    assert _stories_equal_wide_rows(pipeline_pg["serving"]) > 0
    assert _pages_equal_wide_pages(pipeline_pg["serving"]) > 0


@pytest.mark.parametrize("older", ["no stories columns", "stories file gone"])
def test_story_from_a_snapshot_without_its_stories_file(tmp_path, pipeline, client, older):
    """A snapshot written before stories files existed (kept while the API is upgraded), or
    whose stories file is gone, still answers stories, outcomes and pages, from
    ``outcomes``."""
    path = tmp_path / "old.duckdb"
    shutil.copy(pipeline["serving"], path)
    if older == "no stories columns":
        con = duckdb.connect(str(path))
        for col in ("stories", "stories_from"):
            con.execute(f"ALTER TABLE meta DROP COLUMN {col}").fetchall()
        con.close()
    # either way the copy's stories file is not beside it: the file it names is the original's
    rid = pipeline["my_rid"]
    with TestClient(create_app(load_settings(ApiSettings, serving_path=path))) as c:
        assert c.app.state.store.current().stories is None
        assert c.get(f"/api/requests/{rid}/").json() == client.get(f"/api/requests/{rid}/").json()
        imp = client.get(f"/api/outcomes/{rid}:a/").json()
        assert c.get(f"/api/outcomes/{rid}:a/").json() == imp and imp["imp_id"] == "a"
        page = {"ordering": "bid_price", "page_size": 7}
        assert (c.get("/api/outcomes/", params=page).json()["results"]
                == client.get("/api/outcomes/", params=page).json()["results"])


def test_a_damaged_stories_file_is_a_503_not_a_500(tmp_path, pipeline):
    """A stories file that cannot be read (here: cut short after the API opened it) gives
    the same clear 503 with Retry-After as a DuckDB error, never a 500 with a traceback."""
    serving = tmp_path / "serving"
    shutil.copytree(pipeline["serving"].parent, serving)
    path = serving / pipeline["serving"].name
    with TestClient(create_app(load_settings(ApiSettings, serving_path=path))) as c:
        snap = c.app.state.store.current()
        assert snap.stories is not None and len(snap.stories) == 1
        first, last = snap.query("SELECT min(rid), max(rid) FROM outcomes")[0]
        assert c.get(f"/api/requests/{first}/").status_code == 200
        [name] = sql(path, "SELECT stories FROM meta")[0][0]
        with (serving / name).open("r+b") as f:
            assert f.seek(0, 2) > 16_384  # more pages than the ones just read
            f.truncate(8_192)
        got = c.get(f"/api/requests/{last}/")
        assert got.status_code == 503, got.text
        assert got.headers["Retry-After"] == "1" and "serving store" in got.json()["detail"]


def test_helios_serve_api_runs_the_lean_entry_point(tmp_path):
    """`helios serve api` execs helios_pipeline.api.serve (same PID), with glibc's arenas
    capped, so the serving process never carries the CLI's imports."""
    from pathlib import Path as P

    from tests.integration.conftest import _serve_api

    proc, _url = _serve_api(tmp_path / "serving.duckdb", tmp_path)
    try:
        cmdline = P(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert b"helios_pipeline.api.serve" in cmdline and b"helios_pipeline.cli" not in cmdline
        environ = P(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
        assert b"MALLOC_ARENA_MAX=2" in environ
    finally:
        proc.terminate()
        proc.wait(10)
