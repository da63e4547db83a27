"""Which pre-aggregated table answers which query (pure logic; the answers themselves are
checked against SQL over the warehouse in tests/integration/test_api.py)."""

from datetime import date

import pytest

from helios_pipeline.api.queries import Filters


@pytest.mark.parametrize(("filters", "group", "source"), [
    (Filters(), None, "cube_day"),
    (Filters(segment="IAB3", media_type="video", enriched=True), None, "cube_day"),
    (Filters(date_from=date(2026, 12, 1), outcome="won", loss_reason=102), None, "cube_day"),
    (Filters(), "site_domain", "cube_site"),
    (Filters(site_domain="a.com", win_status=True), None, "cube_site"),
    (Filters(), "hour", "cube_hour"),
    (Filters(segment="IAB3"), "hour", "cube"),  # no roll-up has both: the full cube
    (Filters(site_domain="a.com", segment="IAB3"), None, "cube"),
    (Filters(user_id="u1"), None, "outcomes"),  # not a cube dimension: scan the rows
    (Filters(min_price=0.5), "segment", "outcomes"),
])
def test_smallest_table_that_covers_filters_and_grouping(filters, group, source):
    assert filters.source(group) == source


def test_response_cache_is_bounded_and_keyed_by_snapshot_generation():
    from helios_pipeline.api.store import ResponseCache

    cache = ResponseCache(max_entries=3, max_bytes=800)
    for i in range(5):
        cache.put((1, "/api/outcomes/stats/", f"q={i}"), b"x" * 10)
    assert cache.get((1, "/api/outcomes/stats/", "q=0")) is None  # least recently used out
    assert cache.get((1, "/api/outcomes/stats/", "q=4")) == b"x" * 10
    assert cache.get((2, "/api/outcomes/stats/", "q=4")) is None  # a new snapshot: a miss
    cache.put((1, "big", ""), b"y" * 201)  # over max_bytes / 4: not kept
    assert cache.get((1, "big", "")) is None
    cache.put((1, "quarter", ""), b"z" * 200)  # max_bytes / 4 (the dashboard's largest): kept
    assert cache.get((1, "quarter", "")) == b"z" * 200
