"""The offset-gap guard's decisions (common/offset_gaps.py), on stand-in messages: what is
kept, what is dropped for a re-read, when a gap is accepted. The seek on a real broker is
tested in tests/integration/test_offset_gaps.py."""

from __future__ import annotations

from ingest_services.common.offset_gaps import GapGuard, gap_wait_s
from ingest_services.settings import Settings
from tests.unit.fakes import FakeMsg


def M(p: int, o: int, err: object | None = None) -> FakeMsg:
    return FakeMsg(b"", topic="t", partition=p, offset=o, error=err)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def offsets(msgs) -> list[tuple[int, int]]:
    return [(m.partition(), m.offset()) for m in msgs]


def test_contiguous_offsets_pass_untouched() -> None:
    g = GapGuard(2.0)
    msgs = [M(0, 0), M(1, 5), M(0, 1), M(1, 6)]
    keep, rewind = g.split(msgs)
    assert keep == msgs and rewind == {}
    keep, rewind = g.split([M(0, 2), M(1, 7)])
    assert offsets(keep) == [(0, 2), (1, 7)] and rewind == {}
    assert (g.refetched, g.skipped) == (0, 0)


def test_a_gap_drops_that_partitions_rest_and_asks_to_reread_from_it() -> None:
    clock = Clock()
    g = GapGuard(2.0, clock)
    g.split([M(0, 0), M(0, 1), M(1, 0)])
    # the broker served offsets 12.. of partition 0 while 2..11 were not stored yet
    keep, rewind = g.split([M(1, 1), M(0, 12), M(0, 13), M(1, 2)])
    assert offsets(keep) == [(1, 1), (1, 2)]
    assert rewind == {("t", 0): 2}
    # the re-read a moment later: the late batch is there now
    clock.now = 0.01
    keep, rewind = g.split([M(0, o) for o in range(2, 14)])
    assert offsets(keep) == [(0, o) for o in range(2, 14)] and rewind == {}
    assert (g.refetched, g.skipped) == (1, 0)


def test_a_gap_that_stays_is_accepted_after_the_wait_and_counted() -> None:
    clock, seen = Clock(), []
    g = GapGuard(2.0, clock, on_gap=seen.append)
    g.split([M(0, 0)])
    for t in (0.0, 0.5, 1.9):
        clock.now = t
        assert g.split([M(0, 5)]) == ([], {("t", 0): 1})
    clock.now = 2.0
    keep, rewind = g.split([M(0, 5), M(0, 6)])
    assert offsets(keep) == [(0, 5), (0, 6)] and rewind == {}
    assert (g.refetched, g.skipped, seen) == (0, 1, ["skipped"])
    assert g.first_seen == {}


def test_errors_pass_through_and_older_offsets_reset_the_expectation() -> None:
    g = GapGuard(2.0)
    eof = M(0, 3, err="end of partition")
    g.split([M(0, 0), M(0, 1)])
    keep, rewind = g.split([eof, M(0, 0), M(0, 1), M(0, 2)])  # redelivered after a rebalance
    assert keep[0] is eof and offsets(keep[1:]) == [(0, 0), (0, 1), (0, 2)] and rewind == {}


def test_forget_starts_a_partition_afresh() -> None:
    g = GapGuard(2.0)
    g.split([M(0, 0), M(1, 0)])
    g.split([M(0, 9)])  # a gap on 0
    g.forget([("t", 0)])
    keep, rewind = g.split([M(0, 40), M(1, 3)])  # a new assignment starts where it starts
    assert offsets(keep) == [(0, 40)] and rewind == {("t", 1): 1}
    assert list(g.first_seen) == [(("t", 1), 1)]


def test_the_wait_comes_from_settings_and_transactions_switch_it_off() -> None:
    assert gap_wait_s(Settings()) == 2.0
    assert gap_wait_s(Settings(kafka_gap_wait_ms=0)) == 0.0
    assert gap_wait_s(Settings(kafka_transactions=True)) == 0.0
