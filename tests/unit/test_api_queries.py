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

    cache = ResponseCache(max_entries=3, max_bytes=800, max_entry_bytes=200)
    for i in range(5):
        for _ in range(2):  # kept from the second ask (doorkeeper, next test)
            cache.put((1, "/api/outcomes/stats/", f"q={i}"), b"x" * 10)
    assert cache.get((1, "/api/outcomes/stats/", "q=0")) is None  # least recently used out
    assert cache.get((1, "/api/outcomes/stats/", "q=4")) == b"x" * 10
    assert cache.get((2, "/api/outcomes/stats/", "q=4")) is None  # a new snapshot: a miss
    cache.put((1, "big", ""), b"y" * 201)
    cache.put((1, "big", ""), b"y" * 201)  # over max_entry_bytes: not kept
    assert cache.get((1, "big", "")) is None
    cache.put((1, "quarter", ""), b"z" * 200)
    cache.put((1, "quarter", ""), b"z" * 200)  # max_entry_bytes (the dashboard's largest): kept
    assert cache.get((1, "quarter", "")) == b"z" * 200


def test_response_cache_keeps_cheap_answers_only_when_asked_again():
    """Cheap one-off asks (random stories) are not kept; an answer asked a second time is,
    a path and query asked on an earlier snapshot is kept at its first ask on a new one, and
    an expensive answer is kept at its first ask."""
    from helios_pipeline.api.store import ResponseCache

    cache = ResponseCache(max_entries=100, max_bytes=1 << 20, max_seen=3)
    story = (1, "/api/requests/r1/", b"")
    cache.put(story, b"s")
    assert cache.get(story) is None
    cache.put(story, b"s")
    assert cache.get(story) == b"s"
    cache.put((2, "/api/requests/r1/", b""), b"s2")  # asked before, on generation 1
    assert cache.get((2, "/api/requests/r1/", b"")) == b"s2"
    for i in range(3):  # the doorkeeper remembers the last max_seen asks only
        cache.put((2, f"/api/requests/x{i}/", b""), b"x")
    cache.put((3, "/api/requests/r1/", b""), b"s3")
    assert cache.get((3, "/api/requests/r1/", b"")) is None
    cache.put((3, "/api/outcomes/", b"site_domain=rare"), b"p", cost_s=0.03)
    assert cache.get((3, "/api/outcomes/", b"site_domain=rare")) == b"p"
    cache.put((3, "/api/outcomes/", b"site_domain=cheap"), b"q", cost_s=0.001)
    assert cache.get((3, "/api/outcomes/", b"site_domain=cheap")) is None
