"""The advertiser dashboard (helios_pipeline/api/static/) in a real headless Chromium, on live
data from the analytics API (docs/api.md): cards equal ``/api/outcomes/stats/``, the table
pages and filters, a row opens the request's story, the data-as-of line is filled, the
30 s auto-refresh reloads, and an empty snapshot shows the empty state. No JavaScript
console error in any run.

Needs Debian's ``chromium`` at /usr/bin/chromium (skipped, with that reason, without it)
and the ``playwright`` Python package (dev extras); ``playwright install`` is never run.
The ``api_server`` / ``api_empty_server`` fixtures (tests/integration/conftest.py) give the
base URL of a running API over a serving snapshot with pipeline data / with none.
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[2] / ".helios" / "artifacts"
LOAD_TIMEOUT_MS = 20_000


# --- the dashboard's number formats (app.js), computed here from the API's numbers ----------

def fmt_count(n: int) -> str:
    return f"{n:,}"


def fmt_money(v: float | None) -> str:
    """Intl en-US currency, 2–4 fraction digits, half away from zero on the exact value."""
    if v is None:
        return "—"
    d = Decimal(v).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    sign = "-" if d < 0 else ""
    whole, frac = f"{abs(d):.4f}".split(".")
    frac = frac.rstrip("0").ljust(2, "0")
    return f"{sign}${int(whole):,}.{frac}"


def fmt_pct(v: float) -> str:
    """``toFixed(2)`` + ``%`` of a 0–100 rate."""
    return f"{Decimal(v).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}%"


def test_formats_match_the_page() -> None:
    assert fmt_money(0.61) == "$0.61"
    assert fmt_money(1.10137120365) == "$1.1014"
    assert fmt_money(1234.5) == "$1,234.50"
    assert fmt_money(2.1686) == "$2.1686"
    assert fmt_pct(57.6574) == "57.66%" and fmt_pct(0.0) == "0.00%"
    assert fmt_count(4026) == "4,026"


# --- API and browser helpers -----------------------------------------------------------------

def get(base: str, path: str, **params) -> tuple[object, dict[str, str]]:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    url = f"{base.rstrip('/')}{path}{'?' + query if query else ''}"
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read()), {k.lower(): v for k, v in resp.headers.items()}


class Watched:
    """A page whose console errors, uncaught exceptions and failed requests are collected."""

    def __init__(self, browser, base: str) -> None:
        self.base = base.rstrip("/")
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.page.set_default_timeout(LOAD_TIMEOUT_MS)
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}")
                     if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.page.on("requestfailed", lambda r: self.errors.append(
            f"request failed: {r.url} {r.failure}"))
        self.page.on("response", lambda r: self.errors.append(f"HTTP {r.status}: {r.url}")
                     if r.status >= 400 else None)

    def loaded(self) -> str:
        return self.page.evaluate("document.body.dataset.loaded || ''")

    def wait_loaded(self, before: str = "") -> None:
        """Until a full load that started after ``before`` (the previous load's token) ends."""
        self.page.wait_for_function(
            "b => document.body.dataset.loaded && document.body.dataset.loaded !== b", arg=before)

    def goto(self, path: str = "/") -> None:
        self.page.goto(self.base + path)
        self.wait_loaded()

    def text(self, selector: str) -> str:
        return self.page.locator(selector).inner_text().strip()

    def card(self, testid: str) -> str:
        return self.text(f'[data-testid="{testid}"] .value')

    def column(self, col: str) -> list[str]:
        return [t.strip() for t in self.page.locator(
            f'[data-testid="outcomes-table"] tbody td[data-col="{col}"]').all_inner_texts()]

    def row_ids(self) -> list[str]:
        return self.page.locator('[data-testid="outcomes-table"] tbody tr').evaluate_all(
            "rows => rows.map(r => r.dataset.id)")

    def close(self) -> None:
        self.context.close()


def assert_cards(w: Watched, stats: dict) -> None:
    assert w.card("card-total") == fmt_count(stats["total_outcomes"])
    assert w.card("card-winrate") == fmt_pct(stats["win_rate"])
    assert w.card("card-spend") == fmt_money(stats["total_revenue"])
    assert w.card("card-avgbid") == fmt_money(stats["average_bid_price"])
    total_sub = w.text('[data-testid="card-total"] .sub')
    assert f"{fmt_count(stats['total_wins'])} wins" in total_sub
    assert f"{fmt_count(stats['total_losses'])} losses" in total_sub
    assert f"{fmt_count(stats['enriched_count'])} enriched" in w.text(
        '[data-testid="card-winrate"] .sub')
    assert fmt_money(stats["average_clearing_price"]) in w.text('[data-testid="card-spend"] .sub')


# --- the tests -------------------------------------------------------------------------------

def test_dashboard_on_live_data(browser, api_server: str, tmp_path: Path) -> None:
    stats, headers = get(api_server, "/api/outcomes/stats/")
    total = stats["total_outcomes"]
    assert total >= 2, "the api_server fixture's snapshot must hold pipeline outcomes"
    size = max(1, min(25, total // 2))  # at least two pages whatever the data volume
    w = Watched(browser, api_server)
    try:
        w.goto(f"/?page_size={size}")
        page = w.page

        # Cards are the API's numbers, formatted; the empty state is hidden.
        assert_cards(w, stats)
        assert page.get_by_test_id("empty-state").is_hidden()

        # Data as of: the X-Data-As-Of header, shown to the second.
        as_of = w.text('[data-testid="as-of"]')
        assert as_of.startswith("Data as of ") and headers["x-data-as-of"] != "none"
        assert headers["x-data-as-of"][:19].replace("T", " ") in as_of

        # Charts drawn from daily_stats; wins/losses from the stats.
        labels = page.evaluate("['chart-winrate', 'chart-spend'].map(id => "
                               "Chart.getChart(document.getElementById(id)).data.labels.length)")
        assert all(n >= 1 for n in labels)
        assert page.evaluate("Chart.getChart(document.getElementById('chart-wl'))"
                             ".data.datasets[0].data") == [
            stats["total_wins"], stats["total_losses"], stats["no_bid_count"]]

        # Breakdowns: each group's outcome count is the sum of its daily_stats rows.
        for testid, group_by in (("breakdown-site", "site"), ("breakdown-segment", "segment")):
            rows, _ = get(api_server, "/api/outcomes/daily_stats/", group_by=group_by)
            sums: dict[str, int] = {}
            for r in rows:
                key = "" if r["group"] in (None, "") else str(r["group"])
                sums[key] = sums.get(key, 0) + r["total"]
            shown = page.locator(f'[data-testid="{testid}"] tbody tr[data-group]')
            assert shown.count() >= 1
            for i in range(shown.count()):
                cells = shown.nth(i).locator("td").all_inner_texts()
                group = shown.nth(i).get_attribute("data-group")
                key = group if group in sums else ""
                assert cells[1].strip() == fmt_count(sums[key]), (testid, group)

        # Table: a full first page, every column has a value.
        first = w.row_ids()
        assert len(first) == min(size, total)
        cells = page.locator('[data-testid="outcomes-table"] tbody td').all_inner_texts()
        assert cells and all(c.strip() for c in cells), "a table cell is empty"
        ncols = page.locator('[data-testid="outcomes-table"] thead th').count()
        assert len(cells) == ncols * len(first)
        listed, _ = get(api_server, "/api/outcomes/", page=1, page_size=size)
        assert first == [o["id"] for o in listed["results"]]
        assert w.column("outcome") == [o["outcome"] for o in listed["results"]]

        # Paging: the next page shows other rows, previous comes back.
        page.get_by_test_id("page-next").click()
        page.wait_for_function("() => document.body.dataset.page === '2'")
        second = w.row_ids()
        assert second and not set(second) & set(first)
        assert "Page 2" in w.text('[data-testid="page-info"]')
        page.get_by_test_id("page-prev").click()
        page.wait_for_function("() => document.body.dataset.page === '1'")
        assert w.row_ids() == first

        # A filter: outcome=won → every row won, the total card is the filtered count.
        won, _ = get(api_server, "/api/outcomes/stats/", outcome="won")
        before = w.loaded()
        page.get_by_test_id("filters").locator('select[name="outcome"]').select_option("won")
        page.get_by_test_id("filters").locator('button[type="submit"]').click()
        w.wait_loaded(before)
        assert "outcome=won" in page.url
        assert w.card("card-total") == fmt_count(won["total_outcomes"])
        if won["total_outcomes"] != total:
            assert w.card("card-total") != fmt_count(total)
        outcomes = w.column("outcome")
        assert outcomes and set(outcomes) == {"won"}

        # A row click opens that request's story, every imp with its auction.
        row = page.locator('[data-testid="outcomes-table"] tbody tr').first
        rid = row.get_attribute("data-rid")
        row.click()
        story_el = page.get_by_test_id("story")
        page.wait_for_function(
            "rid => document.querySelector('[data-testid=story]').dataset.loaded === rid",
            arg=rid)
        assert story_el.is_visible()
        story, _ = get(api_server, f"/api/requests/{urllib.parse.quote(rid)}/")
        assert w.text('[data-testid="story-rid"]') == rid
        imps = story_el.get_by_test_id("story-imp")
        assert imps.count() == len(story["imps"])
        for i, imp in enumerate(story["imps"]):
            box = imps.nth(i)
            assert box.get_attribute("data-imp-id") == imp["imp_id"]
            text = box.inner_text()
            assert imp["outcome"] in text
            if imp["bid"]:
                assert fmt_money(imp["bid"]["price"]) in text
            else:
                assert (imp["nobid_reason"] or "no bid").replace("_", " ") in text
            if imp["auction"]["clearing_price"] is not None:
                assert fmt_money(imp["auction"]["clearing_price"]) in text
            if imp["loss_reason_text"]:
                assert imp["loss_reason_text"] in text
        assert story["profile"]["status"].replace("_", " ") in story_el.inner_text()
        page.screenshot(path=str(tmp_path / "dashboard-story.png"), full_page=True)
        page.keyboard.press("Escape")
        assert story_el.is_hidden()

        # Date range: the latest day of data → per-hour charts, cards for that day.
        day = headers["x-data-as-of"][:10]
        page.get_by_test_id("filters").locator('select[name="outcome"]').select_option("")
        before = w.loaded()
        page.get_by_role("button", name="Latest day").click()
        w.wait_loaded(before)
        assert page.locator('input[name="date_from"]').input_value() == day
        assert page.locator('input[name="date_to"]').input_value() == day
        assert_cards(w, get(api_server, "/api/outcomes/stats/", date_from=day, date_to=day)[0])
        assert "per hour" in w.text("#cap-winrate")

        # Back to everything, then the refresh button reloads.
        before = w.loaded()
        page.get_by_role("button", name="All").click()
        w.wait_loaded(before)
        assert_cards(w, stats)
        before = w.loaded()
        page.get_by_test_id("refresh").click()
        w.wait_loaded(before)
        assert_cards(w, stats)

        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, ARTIFACTS / "dashboard.png")
        shutil.copy(tmp_path / "dashboard-story.png", ARTIFACTS / "dashboard-story.png")
        print(f"dashboard screenshots: {shot}, {ARTIFACTS / 'dashboard.png'}, "
              f"{ARTIFACTS / 'dashboard-story.png'}")
        assert w.errors == []
    finally:
        w.close()


def test_auto_refresh_every_30_s(browser, api_server: str) -> None:
    w = Watched(browser, api_server)
    try:
        w.page.clock.install()
        w.goto("/")
        first = w.loaded()
        w.page.clock.run_for(25_000)  # (the clock also runs in real time meanwhile)
        assert w.loaded() == first
        w.page.clock.run_for(6_000)
        w.wait_loaded(first)
        assert w.errors == []
    finally:
        w.close()


def test_empty_snapshot_shows_the_empty_state(browser, api_empty_server: str,
                                              tmp_path: Path) -> None:
    stats, _ = get(api_empty_server, "/api/outcomes/stats/")
    assert stats["total_outcomes"] == 0
    w = Watched(browser, api_empty_server)
    try:
        w.goto("/")
        empty = w.page.get_by_test_id("empty-state")
        assert empty.is_visible()
        assert "No data yet" in empty.inner_text()
        assert w.card("card-total") == "0"
        assert w.page.get_by_test_id("outcomes-table").is_hidden()
        assert w.page.locator("#message").is_hidden()
        assert w.text('[data-testid="as-of"]')
        w.page.screenshot(path=str(tmp_path / "dashboard-empty.png"), full_page=True)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / "dashboard-empty.png", ARTIFACTS / "dashboard-empty.png")
        print(f"empty-state screenshot: {ARTIFACTS / 'dashboard-empty.png'}")
        assert w.errors == []
    finally:
        w.close()


def test_api_docs_page_renders_offline_from_packaged_assets(browser, api_server: str) -> None:
    """/docs is Swagger UI from the package (this machine has no CDN): it renders the API's
    operations, and every request the page makes stays on the API's own host."""
    w = Watched(browser, api_server)
    hosts: set[str] = set()
    w.page.on("request", lambda r: hosts.add(urllib.parse.urlsplit(r.url).netloc))
    try:
        w.page.goto(w.base + "/docs")
        w.page.wait_for_selector("text=/api/outcomes/stats/", timeout=LOAD_TIMEOUT_MS)
        assert w.page.locator(".swagger-ui .opblock").count() >= 6
        assert hosts == {urllib.parse.urlsplit(w.base).netloc}, hosts
        assert w.errors == [], w.errors
    finally:
        w.close()
