"""What each warehouse column means, once: Dagster's column schemas (the asset catalog is
the data dictionary) take their descriptions from here.

Keyed by column name, because a name means the same in every table that has it (``rid`` in
``bid_requests`` is the ``rid`` of ``outcomes``). ``tests/unit/test_glossary.py`` fails if
a column of :data:`tables.TABLES` has no entry, or an entry names no column. Topic fields
are described in docs/messages.md; analysts' groupings of these columns in analysts.md.
"""

COLUMNS: dict[str, str] = {
    # keys and request context
    "rid": "Helios request id (32 hex chars, time-ordered), assigned by the gateway on accept",
    "imp_id": "OpenRTB imp.id; with rid, the key of one offered impression",
    "request_id": "OpenRTB request.id as the exchange sent it (not unique: see rid)",
    "received_at": "when the gateway accepted the request (UTC)",
    "media": "media type priced: video, audio, native or banner",
    "bidfloor": "imp.bidfloor as sent, in bidfloorcur",
    "bidfloorcur": "currency of bidfloor as sent (ISO 4217)",
    "floor_usd": "the imp's floor converted to USD CPM (0 when absent)",
    "auction_type": "OpenRTB at: 1 first price, 2 second price, ≥ 500 exchange-specific",
    "site_domain": "site.domain of a site request",
    "app_bundle": "app.bundle of an app request",
    "domain": "site domain or app bundle: where the imp would show",
    "publisher_id": "site.publisher.id or app.publisher.id",
    "device_type": "OpenRTB device.devicetype (1 mobile/tablet, 2 PC, 3 CTV, 4 phone, …)",
    "country": "device.geo.country (ISO 3166-1 alpha-3)",
    "user_id": "user.id of the request (the profile looked up)",
    # the bid
    "bid_at": "when the bidder answered (UTC)",
    "bid_price_usd": "bid CPM in USD; null for a no-bid",
    "bid_price": "bid CPM in bid_cur",
    "bid_cur": "currency of the bid (ISO 4217)",
    "crid": "creative id of the bid",
    "enriched": "true when a user profile was found and used for the bid",
    "profile": "profile lookup result: found, not_found, no_user, unavailable, circuit_open",
    "segment": "the user's best interest (IAB tier-1 category), or unknown without a profile",
    "interest_score": "score in [0, 1] of that interest; null without a profile",
    "nobid_reason": "why the bidder passed: below_floor, unsupported_currency, …",
    # the auction
    "outcome": "won, lost or nobid",
    "clearing_price_usd": "CPM paid when won (second price: max(competitor, floor))",
    "competitor_price_usd": "the best competing bid in the simulated market, CPM USD",
    "loss_reason": "OpenRTB loss reason: 0 won, 100 below floor, 102 outbid",
    "strategy": "how the auctioneer decided: market (simulated competing bids) or threshold",
    "decided_at": "when the auctioneer decided the outcome (UTC)",
    # exactly-once bookkeeping
    "topic": "Kafka topic",
    "partition": "Kafka partition",
    "next_offset": "the next offset to read: rows below it are in the warehouse",
    "updated_at": "when the offset last moved (UTC)",
    "offset": "offset of the rejected message",
    "reason": "why the message could not become rows",
    "rejected_at": "when it was rejected (UTC)",
    # serving_changes: what the serving snapshot's next publish re-copies
    "lo_rid": "lowest rid whose outcomes row an ingest batch changed ('' = every row)",
    "hi_rid": "highest rid whose outcomes row that batch changed",
    "changed_at": "when the batch committed (UTC)",
    # daily_stats (sum the counts and recompute the rates; never average rates)
    "day": "UTC day",
    "hour": "UTC hour of day, 0-23",
    "requests": "imps offered",
    "bids": "imps bid on",
    "wins": "imps won",
    "floor_passes": "bids at or above the floor",
    "bid_sum_usd": "sum of bid CPMs, USD",
    "clearing_sum_usd": "sum of clearing CPMs of won imps, USD",
    "won_bid_sum_usd": "sum of bid CPMs of won imps, USD",
    "spend_usd": "spend in USD: Σ clearing CPM / 1000",
    "bid_rate": "bids / requests",
    "win_rate": "wins / bids",
    "ecpm_usd": "spend / wins × 1000",
    "avg_clearing_usd": "clearing_sum_usd / wins",
    "shading_ratio": "clearing / bid of won imps",
    "floor_pass_rate": "floor_passes / bids",
    # user_profiles
    "locale": "user's locale",
    "age_band": "age band",
    "gender": "gender",
    "income_band": "income band",
    "top_interest": "the interest with the highest score (IAB tier-1)",
    "top_score": "its score in [0, 1]",
    "interests": "interest categories (IAB tier-1)",
    "scores": "their scores, in the same order",
}
