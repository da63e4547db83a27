"""Auction rules: who wins an impression and what it clears at.

``at=1`` first price (the winner pays its bid), ``at=2`` second price (the winner pays the
best other eligible price plus one cent, at least the floor, never more than its bid);
exchange-specific types (``at`` ≥ 500) are treated as first price. Loss reasons are the
OpenRTB 2.x codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

LOSS_WON = 0  # OpenRTB "Bid Won"
LOSS_BELOW_FLOOR = 100  # "Bid was Below Auction Floor"
LOSS_OUTBID = 102  # "Lost to Higher Bid"
INCREMENT = 0.01


class Uniform(Protocol):
    """A source of uniform draws in [0, 1) (the market's HashStream, or random.Random)."""

    def random(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: str  # won | lost
    clearing_price: float | None
    loss_reason: int
    competitor_price: float | None


def run_auction(bid: float, floor: float, at: int, competing: list[float]) -> Decision:
    eligible = [c for c in competing if c >= floor]
    top = max(eligible) if eligible else None
    if bid < floor:
        return Decision("lost", None, LOSS_BELOW_FLOOR, top)
    if top is not None and top >= bid:  # ties go to the market
        return Decision("lost", None, LOSS_OUTBID, top)
    if at == 2:
        runner_up = max(floor, top if top is not None else 0.0)
        clearing = min(bid, round(runner_up + INCREMENT, 4))
    else:
        clearing = bid
    return Decision("won", round(clearing, 4), LOSS_WON, top)


def threshold_auction(
    bid: float, floor: float, threshold: float, win_probability: float, rng: Uniform
) -> Decision:
    """The seed system's rule: bids at or above a threshold win with a fixed probability."""
    if bid < floor:
        return Decision("lost", None, LOSS_BELOW_FLOOR, None)
    if bid >= threshold and rng.random() < win_probability:
        return Decision("won", bid, LOSS_WON, None)
    return Decision("lost", None, LOSS_OUTBID, None)
