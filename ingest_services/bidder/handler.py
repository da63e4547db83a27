"""Turns a batch of ``bid_requests`` into ``bid_responses``: one message per request.

Profiles for the whole batch come from one batched gRPC call; when that path is down the
batch is bid unenriched (``enriched: false`` with the reason) instead of stalling.

Each message is decoded with :data:`BidderEnvelope`, a typed view of the request envelope
contract with only the fields pricing reads (derived by ``contracts.partial``, not written
again): msgspec skips the rest of the OpenRTB request while parsing. The gateway checked
the full contract before publishing; what the view reads is still type-checked here, so a
message without them is poison as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import Message
from prometheus_client import Counter, Histogram

from ingest_services.bidder.pricing import bid_currency, price_imp
from ingest_services.common.stream_worker import Record, dead_letter
from ingest_services.contracts import messages as m
from ingest_services.contracts.messages import BidResponse, RequestEnvelope
from ingest_services.contracts.openrtb import BidRequest
from ingest_services.contracts.partial import KEEP, PRESENT, view
from ingest_services.profiles.client import ENRICHMENT, ProfileClient
from ingest_services.profiles.seed import best_interest

PROCESSED = Counter("bid_requests_processed_total", "Requests bid on", ["status"])  # bid|nobid
BID_PRICE = Histogram(
    "bid_price_distribution_usd", "Bid CPM in USD",
    buckets=(0.1, 0.25, 0.35, 0.5, 0.6, 0.85, 1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 5.0),
)
SERVICE = "bidder"
PROCESSED_BID, PROCESSED_NOBID = PROCESSED.labels("bid"), PROCESSED.labels("nobid")
ENRICHMENT_NO_USER = ENRICHMENT.labels("no_user")


# What pricing reads of a request (bidder/pricing.py, _respond below): the view's types,
# constraints and properties (``Imp.media``, ``BidRequest.auction_type``) are the contract's.
BIDDER_REQUEST_FIELDS = {
    "id": KEEP,
    "imp": {"id": KEEP, "banner": PRESENT, "video": PRESENT, "audio": PRESENT,
            "native": PRESENT, "bidfloor": KEEP, "bidfloorcur": KEEP},
    "at": KEEP,
    "cur": KEEP,
    "user": {"id": KEEP},
}
BidderEnvelope = view(RequestEnvelope, {"v": KEEP, "rid": KEEP, "received_at": KEEP,
                                        "request": BIDDER_REQUEST_FIELDS}, "BidderEnvelope")


def user_of(request: BidRequest) -> str | None:
    uid = request.user.id if request.user is not None else None
    return uid or None


class BidderHandler:
    def __init__(self, profiles: ProfileClient, responses_topic: str) -> None:
        self.profiles = profiles
        self.topic = responses_topic
        self._counts = [0, 0, 0]

    def __call__(self, batch: Sequence[Message]) -> list[Record]:
        out: list[Record] = []
        parsed: list[tuple[Message, RequestEnvelope, str | None]] = []
        for msg in batch:
            try:
                env = m.decode(msg.value(), BidderEnvelope)
                parsed.append((msg, env, user_of(env.request)))
            except Exception as exc:  # poison: anything we cannot read goes to the DLQ
                out.append(dead_letter(msg, f"unparseable bid request: {exc}", SERVICE))
        lookup = self.profiles.lookup([uid for _, _, uid in parsed if uid])
        self._counts = [0, 0, 0]  # bid, nobid, no user: counters once per batch
        for msg, env, uid in parsed:
            try:
                out.append(self._respond(env, uid, lookup.profiles, lookup.status))
            except Exception as exc:
                out.append(dead_letter(msg, f"cannot price request: {exc}", SERVICE))
        bid, nobid, no_user = self._counts
        if bid:
            PROCESSED_BID.inc(bid)
        if nobid:
            PROCESSED_NOBID.inc(nobid)
        if no_user:
            ENRICHMENT_NO_USER.inc(no_user)
        return out

    def _respond(self, env: RequestEnvelope, uid: str | None, profiles: dict,
                 lookup_status: str) -> Record:
        req = env.request
        profile = profiles.get(uid) if uid else None
        if uid is None:
            profile_status = "no_user"
            self._counts[2] += 1
        elif profile is not None:
            profile_status = "found"
        elif lookup_status == "ok":
            profile_status = "not_found"
        else:
            profile_status = lookup_status  # unavailable | circuit_open
        best = best_interest(profile) if profile is not None else None
        cur = bid_currency(req)
        imps = [price_imp(imp, best[1] if best else None, cur) for imp in req.imp]
        n_bids = 0
        for b in imps:
            if b.price_usd is not None:
                n_bids += 1
                BID_PRICE.observe(b.price_usd)
        self._counts[0 if n_bids else 1] += 1
        msg = BidResponse(
            v=m.SCHEMA_VERSION,
            rid=env.rid,
            request_id=req.id,
            received_at=env.received_at,
            bid_at=m.now_ms(),
            at=req.auction_type,
            user_id=uid,
            profile=profile_status,
            enriched=profile is not None,
            segment=best[0] if best else "unknown",
            interest_score=best[1] if best else None,
            imps=[b.as_message(best[0] if best else None) for b in imps],
        )
        return Record(self.topic, env.rid, m.encode(msg))
