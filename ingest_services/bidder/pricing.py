"""How Helios prices an impression (documented in docs/pricing.md).

CPM base from the user's best interest score (the seed system's tiers), times a media-type
multiplier; bid only at or above the floor, compared in USD with a small fixed rate table.
Pure and deterministic: the same request and profile always give the same bid.
"""

from __future__ import annotations

from dataclasses import dataclass

from ingest_services.contracts.messages import Bid, ImpResponse
from ingest_services.contracts.openrtb import MEDIA, BidRequest, Imp

# Seed system tiers: best interest score → base CPM in USD.
NO_PROFILE_CPM = 0.35


def base_cpm(best_score: float | None) -> float:
    if best_score is None:
        return NO_PROFILE_CPM
    if best_score > 0.9:
        return 1.20
    if best_score >= 0.7:
        return 0.85
    if best_score >= 0.5:
        return 0.60
    return 0.35


# Richer formats clear higher in the open market; priced in this order when an imp offers
# several media objects (an imp with banner and video is bid as video).
MEDIA_MULTIPLIER = {"video": 2.5, "audio": 1.5, "native": 1.3, "banner": 1.0}
MEDIA_ORDER = MEDIA

# USD value of one unit of each currency (fixed on purpose: a simulation must be repeatable).
USD_PER_UNIT = {
    "USD": 1.0, "EUR": 1.08, "GBP": 1.27, "JPY": 0.0067, "CAD": 0.73, "AUD": 0.66,
    "CHF": 1.13, "CNY": 0.14, "INR": 0.012, "BRL": 0.18, "SEK": 0.095, "PLN": 0.25,
}


@dataclass(frozen=True, slots=True)
class ImpBid:
    imp_id: str
    media: str
    floor_usd: float
    price: float | None = None  # in ``cur``; None means no bid
    cur: str = "USD"
    price_usd: float | None = None
    nobid_reason: str | None = None

    def as_message(self, interest: str | None) -> ImpResponse:
        """The imp's entry in a ``bid_responses`` message (creative targets the interest)."""
        if self.price is None:
            return ImpResponse(imp_id=self.imp_id, media=self.media, floor_usd=self.floor_usd,
                               bid=None, nobid_reason=self.nobid_reason)
        return ImpResponse(
            imp_id=self.imp_id, media=self.media, floor_usd=self.floor_usd,
            bid=Bid(price=self.price, cur=self.cur, price_usd=self.price_usd or 0.0,
                    crid=f"cr-{self.media}-{(interest or 'generic').lower()}",
                    interest=interest),
        )


def media_of(imp: Imp) -> str:
    return imp.media  # video, audio, native, banner: the contract's precedence


def bid_currency(request: BidRequest) -> str | None:
    """USD unless the request restricts currencies; then the first one we can price."""
    allowed = request.cur
    if not allowed or "USD" in allowed:
        return "USD"
    return next((c for c in allowed if c in USD_PER_UNIT), None)


def price_imp(imp: Imp, best_score: float | None, cur: str | None) -> ImpBid:
    media = imp.media
    imp_id = imp.id
    floor = float(imp.bidfloor or 0.0)
    floor_cur = imp.bidfloorcur or "USD"
    rate = USD_PER_UNIT.get(floor_cur)
    if rate is None:
        return ImpBid(imp_id, media, floor, nobid_reason="unsupported_floor_currency")
    floor_usd = round(floor * rate, 6)
    if cur is None:
        return ImpBid(imp_id, media, floor_usd, nobid_reason="unsupported_currency")
    bid_usd = round(base_cpm(best_score) * MEDIA_MULTIPLIER[media], 4)
    if bid_usd < floor_usd:
        return ImpBid(imp_id, media, floor_usd, nobid_reason="below_floor")
    price = round(bid_usd / USD_PER_UNIT[cur], 4)
    return ImpBid(imp_id, media, floor_usd, price=price, cur=cur, price_usd=bid_usd)
