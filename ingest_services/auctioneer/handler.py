"""Turns ``bid_responses`` into ``auction_outcomes``: exactly one record per imp.

Every imp of a response ends as won (with clearing price), lost (with OpenRTB loss reason)
or no-bid (with the bidder's reason); an unreadable response becomes one dead letter.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from confluent_kafka import Message
from prometheus_client import Counter, Histogram

from ingest_services.auctioneer.auction import Decision, run_auction, threshold_auction
from ingest_services.auctioneer.market import MarketModel
from ingest_services.common.stream_worker import Record, dead_letter
from ingest_services.contracts import messages as m
from ingest_services.contracts.messages import AuctionOutcome, BidResponse
from ingest_services.settings import AuctioneerSettings as Settings

OUTCOMES = Counter("auction_outcomes_total", "Imp outcomes", ["outcome"])
CLEARING = Histogram(
    "clearing_price_usd", "Clearing CPM in USD of won imps",
    buckets=(0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0),
)
SERVICE = "auctioneer"
OUTCOME_COUNTERS = {k: OUTCOMES.labels(k) for k in ("won", "lost", "nobid")}


class AuctioneerHandler:
    def __init__(self, settings: Settings, outcomes_topic: str) -> None:
        self.s = settings
        self.topic = outcomes_topic
        self.market = MarketModel(settings.market_seed, settings.market_competitors)

    def __call__(self, batch: Sequence[Message]) -> list[Record]:
        out: list[Record] = []
        counts = dict.fromkeys(OUTCOME_COUNTERS, 0)  # counters once per batch
        for msg in batch:
            try:
                resp = m.decode(msg.value(), BidResponse)
                outcomes = self.decide(resp, count=False)
                records = [Record(self.topic, resp.rid, m.encode(o)) for o in outcomes]
            except Exception as exc:  # poison: one dead letter, then move on
                out.append(dead_letter(msg, f"cannot run auction: {exc}", SERVICE))
                continue
            out.extend(records)
            for o in outcomes:
                counts[o.outcome] += 1
        for outcome, n in counts.items():
            if n:
                OUTCOME_COUNTERS[outcome].inc(n)
        return out

    def decide(self, resp: BidResponse, count: bool = True) -> list[AuctionOutcome]:
        """One outcome per imp of a bid response (``count``: add them to the outcome
        counters here; the batch path counts once per batch instead)."""
        at = resp.at or 2
        request_id = resp.request_id or resp.rid
        segment = resp.segment or "unknown"
        decided_at = m.now_ms()
        hour = time.gmtime(resp.received_at / 1000).tm_hour
        outcomes = []
        for imp in resp.imps:
            floor = imp.floor_usd
            common = dict(
                v=m.SCHEMA_VERSION, rid=resp.rid, request_id=resp.request_id,
                imp_id=imp.imp_id, media=imp.media, segment=segment, enriched=resp.enriched,
                at=at, floor_usd=floor, received_at=resp.received_at, bid_at=resp.bid_at,
                decided_at=decided_at, strategy=self.s.auction_strategy,
            )
            bid = imp.bid
            if bid is None:
                outcomes.append(AuctionOutcome(
                    **common, outcome="nobid", nobid_reason=imp.nobid_reason or "no_bid"))
                if count:
                    OUTCOME_COUNTERS["nobid"].inc()
                continue
            price = bid.price_usd
            rng = self.market.rng(request_id, imp.imp_id)
            if self.s.auction_strategy == "threshold":
                d: Decision = threshold_auction(
                    price, floor, self.s.threshold_cpm, self.s.threshold_win_probability, rng
                )
            else:
                competing = self.market.competing_bids(rng, segment, imp.media, hour)
                d = run_auction(price, floor, at, competing)
            outcomes.append(AuctionOutcome(
                **common, outcome=d.outcome, bid_price_usd=price,
                clearing_price_usd=d.clearing_price, loss_reason=d.loss_reason,
                competitor_price_usd=d.competitor_price, crid=bid.crid))
            if count:
                OUTCOME_COUNTERS[d.outcome].inc()
            if d.clearing_price is not None:
                CLEARING.observe(d.clearing_price)
        return outcomes
