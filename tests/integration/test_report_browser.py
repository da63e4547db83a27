"""The daily report (assets/report.py) in a real headless Chromium: a warehouse with 8 days
of ``outcomes`` (known rows, bulk SQL) and their ``daily_stats``; the report asset is
materialised for the last day, report.html is opened and the numbers it shows (KPI cards,
totals rows, "top N of M", by media type, loss reasons, the day against the previous 7
days) are checked against SQL over daily_stats / outcomes. The CSV has no number with more
than 4 decimals; the Markdown metadata (the Dagster UI) has the same totals. A full-page
screenshot is saved under the test's tmp dir (path printed).

Needs Debian's ``chromium`` at /usr/bin/chromium (skipped, with that reason, without it)
and the ``playwright`` Python package; ``playwright install`` is never run.
"""

from __future__ import annotations

import csv
import re
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.report import daily_win_rate_report
from helios_pipeline.resources import DuckDBWarehouse, PathsResource
from helios_pipeline.warehouse import schema, tables

pytestmark = pytest.mark.integration

DAY = date(2026, 3, 8)
DAYS = [DAY - timedelta(days=7 - i) for i in range(8)]  # 7 previous days, then DAY
EMPTY_HOURS = {3, 4, 5}  # no traffic in these hours of DAY


# --- the report's formats, written out again here (not imported from the code under test) ---

def count(n: int) -> str:
    return f"{n:,}"


def pct(frac: float) -> str:
    return f"{Decimal(frac * 100).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}%"


def money(v: float) -> str:
    d = Decimal(v).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    whole, frac = f"{d:.4f}".split(".")
    return f"${int(whole):,}.{frac.rstrip('0').ljust(2, '0')}"


def test_formats() -> None:
    assert (count(12345), pct(0.45678), pct(0.0)) == ("12,345", "45.68%", "0.00%")
    assert (money(15.750000000000007), money(1.10137), money(1234.5)) == \
        ("$15.75", "$1.1014", "$1,234.50")


# --- the warehouse ---------------------------------------------------------------------------

def outcomes_sql(di: int, day: date, n: int) -> str:
    """``n`` outcome rows of ``day`` (index ``di``): sites, segments, media, hours, outcomes,
    loss reasons and prices all derived from the row number, so the sums are known."""
    hour = ("CASE WHEN i % 21 >= 3 THEN i % 21 + 3 ELSE i % 21 END" if day == DAY
            else "i % 24")
    return f"""
    INSERT INTO outcomes (rid, imp_id, day, received_at, domain, site_domain, segment, media,
                          floor_usd, bid_price_usd, outcome, clearing_price_usd, loss_reason)
    SELECT 'r{di}-' || i, '1', DATE '{day}',
           (DATE '{day}' + INTERVAL ({hour}) HOUR + INTERVAL (i % 60) MINUTE)::TIMESTAMPTZ,
           dom, dom, seg, med, 0.4, bid, outcome,
           CASE WHEN outcome = 'won' THEN round(bid * 0.83, 4) END,
           CASE WHEN outcome = 'won' THEN 0 WHEN outcome = 'nobid' THEN NULL
                WHEN i % 41 = 0 THEN 103 WHEN i % 3 = 0 THEN 100 ELSE 102 END
    FROM (
        SELECT i, 'site' || lpad(((i % 97) % 20)::VARCHAR, 2, '0') || '.example' AS dom,
               ['sports', 'news', 'auto', 'finance'][(i // 7) % 4 + 1] AS seg,
               ['banner', 'video', 'native', 'audio'][(i // 3) % 4 + 1] AS med,
               CASE WHEN (i * 37 + {di} * 11) % 100 < 25 + {di} THEN 'won'
                    WHEN (i * 37 + {di} * 11) % 100 < 70 THEN 'lost' ELSE 'nobid' END
                   AS outcome,
               CASE WHEN (i * 37 + {di} * 11) % 100 < 70
                    THEN 0.5 + (i % 29) * 0.0731 + {di} * 0.01 END AS bid
        FROM range({n}) t(i))"""


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("report") / "wh.duckdb"
    con = duckdb.connect(str(db))
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(tables.ddl(tables.OutcomeRow, key=False))
        con.execute(schema.DAILY_STATS)
        for di, day in enumerate(DAYS):
            con.execute(outcomes_sql(di, day, 2000 + 150 * di))
            con.execute(schema.DAILY_STATS_FOR_DAY, [day])
    finally:
        con.close()
    return db


@pytest.fixture(scope="module")
def materialized(warehouse) -> tuple[Path, dict]:
    reports = warehouse.parent / "reports"
    res = dg.materialize(
        [daily_win_rate_report], partition_key=DAY.isoformat(),
        resources={"warehouse": DuckDBWarehouse(path=str(warehouse)),
                   "paths": PathsResource(reports_dir=str(reports),
                                          exports_dir=str(warehouse.parent / "exports"))})
    assert res.success
    md = res.asset_materializations_for_node("daily_win_rate_report")[0].metadata
    return reports / DAY.isoformat(), md


def q(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


SUMS = "sum(requests)::BIGINT, sum(bids)::BIGINT, sum(wins)::BIGINT, sum(clearing_sum_usd)"


def kpi_cells(requests: int, bids: int, wins: int, clearing: float) -> list[str]:
    """requests, bids, wins, bid rate, win rate, spend, eCPM as the report shows them."""
    return [count(requests), count(bids), count(wins), pct(bids / requests), pct(wins / bids),
            money(clearing / 1000), money(clearing / wins)]


# --- the tests -------------------------------------------------------------------------------

def test_report_in_chromium_shows_the_numbers_of_daily_stats(
    warehouse, materialized, browser, tmp_path
):
    out, _md = materialized
    for name in ("report.html", "report.md", "daily_stats.csv", "win_rate_by_hour.png",
                 "trend_7_days.png"):
        assert (out / name).stat().st_size > 0
    total = q(warehouse, f"SELECT {SUMS} FROM daily_stats WHERE day = ?", [DAY])[0]
    prev = q(warehouse, f"SELECT {SUMS} FROM daily_stats WHERE day BETWEEN ? AND ?",
             [DAYS[0], DAYS[-2]])[0]
    assert total[0] == 2000 + 150 * 7  # the data is what the test meant
    pairs, sites = q(warehouse, "SELECT count(DISTINCT (domain, segment)), "
                                "count(DISTINCT domain) FROM daily_stats WHERE day = ?",
                     [DAY])[0]
    top = q(warehouse, f"""SELECT domain, segment, {SUMS} FROM daily_stats WHERE day = ?
                           GROUP BY ALL ORDER BY 4 DESC, 1, 2 LIMIT 15""", [DAY])
    media = q(warehouse, f"""SELECT media, {SUMS} FROM daily_stats WHERE day = ?
                             GROUP BY ALL ORDER BY 3 DESC, 1""", [DAY])
    losses = q(warehouse, """SELECT loss_reason, count(*) FROM outcomes
                             WHERE day = ? AND outcome = 'lost'
                             GROUP BY ALL ORDER BY 2 DESC, 1""", [DAY])
    all_bids = q(warehouse, "SELECT count(*) FROM outcomes WHERE day = ? AND outcome IN "
                            "('won', 'lost')", [DAY])[0][0]
    assert pairs > 15 and {r for r, _c in losses} == {100, 102, 103}

    page = browser.new_page(viewport={"width": 1100, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: errors.append(f"request: {r.url}")
            if not r.url.startswith(("file:", "data:")) else None)
    page.goto((out / "report.html").as_uri())

    def cells(selector: str) -> list[list[str]]:
        return [[c.strip() for c in row.locator("td").all_inner_texts()]
                for row in page.locator(selector).all()]

    cards = {k: page.locator(f'#kpis [data-kpi="{k}"] .v').inner_text()
             for k in ("requests", "bids", "wins", "bid rate", "win rate", "spend", "eCPM")}
    assert list(cards.values()) == kpi_cells(*total)
    # the table by site and segment: "top 15 of M", 15 rows, the rest, the totals row
    assert page.locator("#by-site h2").inner_text() == \
        f"By site and segment: top 15 of {count(pairs)}"
    assert f"({count(sites)} sites)" in page.locator("#by-site .note").inner_text()
    assert cells("#by-site tbody tr:not(.other)") == \
        [[d, s, *kpi_cells(*k)] for d, s, *k in top]
    rest = [total[i] - sum(r[2 + i] for r in top) for i in range(4)]
    assert cells("#by-site tr.other") == \
        [[f"other {count(pairs - 15)} rows", "", *kpi_cells(*rest)]]
    assert cells("#by-site tr.total") == [["total", f"{count(pairs)} rows", *kpi_cells(*total)]]
    assert cells("#by-media tbody tr") == [[m, *kpi_cells(*k)] for m, *k in media]
    assert cells("#by-media tr.total") == [["total", *kpi_cells(*total)]]
    assert len(cells("#by-segment tbody tr")) == 4
    assert cells("#by-segment tr.total") == [["total", *kpi_cells(*total)]]
    # loss reasons from outcomes, with OpenRTB names
    lost = sum(c for _r, c in losses)
    names = {100: "Bid was below auction floor", 102: "Lost to higher bid",
             103: "Lost to a bid for a PMP deal"}
    assert cells("#loss-reasons tbody tr") == [
        [str(r), names[r], count(c), pct(c / lost), pct(c / all_bids)] for r, c in losses]
    assert cells("#loss-reasons tr.total") == \
        [["", "all lost bids", count(lost), "100.00%", pct(lost / all_bids)]]
    # the day against the previous 7 days: rates from the 7 days' summed counts
    vs = {row[0]: row[1:] for row in cells("#vs-previous tbody tr")}
    assert vs["win rate"][:2] == [pct(total[2] / total[1]), pct(prev[2] / prev[1])]
    assert vs["bid rate"][:2] == [pct(total[1] / total[0]), pct(prev[1] / prev[0])]
    assert vs["eCPM (USD)"][:2] == [money(total[3] / total[2]), money(prev[3] / prev[2])]
    assert vs["spend (USD)"][:2] == [money(total[3] / 1000), f"{money(prev[3] / 7000)} / day"]
    assert vs["requests"][:2] == [count(total[0]), f"{count(round(prev[0] / 7))} / day"]
    # both charts are there and decoded
    assert page.evaluate("[...document.images].map(i => i.naturalWidth > 0)") == [True, True]
    assert page.locator("script").count() == 0 and errors == []
    shot = tmp_path / "daily_report.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"\nscreenshot: {shot}")
    page.close()


def test_report_csv_is_rounded_and_markdown_metadata_has_the_same_totals(
    warehouse, materialized
):
    out, md = materialized
    with (out / "daily_stats.csv").open() as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    assert {"win_rate_pct", "bid_rate_pct", "spend_usd", "ecpm_usd"} <= set(header)
    assert "win_rate" not in header  # the header says a rate is a percentage
    assert len(body) == q(warehouse, "SELECT count(*) FROM daily_stats WHERE day = ?",
                          [DAY])[0][0]
    too_long = [v for row in body for v in row if re.fullmatch(r"-?\d+\.\d{5,}", v)]
    assert too_long == []
    col = header.index("win_rate_pct")
    stats = q(warehouse, "SELECT win_rate FROM daily_stats WHERE day = ? "
                         "ORDER BY hour, domain, segment, media", [DAY])
    assert [r[col] for r in body] == [
        "" if w is None else str(Decimal(w * 100).quantize(Decimal("0.01"),
                                                           rounding=ROUND_HALF_UP))
        for (w,) in stats]

    total = q(warehouse, f"SELECT {SUMS} FROM daily_stats WHERE day = ?", [DAY])[0]
    pairs = q(warehouse, "SELECT count(DISTINCT (domain, segment)) FROM daily_stats "
                         "WHERE day = ?", [DAY])[0][0]
    report = md["report"].value
    r, b, w, s, e = (count(total[0]), count(total[1]), count(total[2]), money(total[3] / 1000),
                     money(total[3] / total[2]))
    assert (f"**{r}** requests, **{b}** bids (bid rate **{pct(total[1] / total[0])}**), "
            f"**{w}** wins (win rate **{pct(total[2] / total[1])}**); spend **{s}**, "
            f"eCPM **{e}**.") in report
    total_row = (f"| **total** | **{count(pairs)} rows** | **{r}** | **{b}** | **{w}** | "
                 f"**{pct(total[1] / total[0])}** | **{pct(total[2] / total[1])}** | "
                 f"**{s}** | **{e}** |")
    assert total_row in report and total_row in md["by_site_and_segment"].value
    assert f"## By site and segment: top 15 of {count(pairs)}" in report
    assert "| domain | segment |" in md["by_site_and_segment"].value
    assert "## Why bids were lost" in report and "| 102 | Lost to higher bid |" in report
    assert md["win_rate_by_hour"].value.startswith("![win rate by hour](data:image/png;base64,")
    assert (md["requests"].value, md["bids"].value, md["wins"].value) == total[:3]
    assert (out / "report.md").read_text().startswith(f"# Daily report — {DAY}")
