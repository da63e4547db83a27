"""Kafka messages → warehouse rows, one row per imp (pure functions, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson


def _ts(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None


def _str(v: object) -> str | None:
    return v if isinstance(v, str) else None


def _int(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def request_rows(value: bytes) -> list[tuple]:
    env = orjson.loads(value)
    req = env["request"]
    site = req.get("site") if isinstance(req.get("site"), dict) else {}
    app = req.get("app") if isinstance(req.get("app"), dict) else {}
    dooh = req.get("dooh") if isinstance(req.get("dooh"), dict) else {}
    device = req.get("device") if isinstance(req.get("device"), dict) else {}
    geo = device.get("geo") if isinstance(device.get("geo"), dict) else {}
    user = req.get("user") if isinstance(req.get("user"), dict) else {}
    owner = site or app or dooh
    pub = owner.get("publisher") if isinstance(owner.get("publisher"), dict) else {}
    from ingest_services.bidder.pricing import media_of

    received = _ts(env["received_at"])
    rows = []
    for imp in req["imp"]:
        rows.append((
            env["rid"], str(imp["id"]), _str(req.get("id")), received, media_of(imp),
            float(imp.get("bidfloor") or 0.0), imp.get("bidfloorcur") or "USD",
            _int(req.get("at")) or 2, _str(site.get("domain")) or _str(dooh.get("domain")),
            _str(app.get("bundle")), _str(pub.get("id")), _int(device.get("devicetype")),
            _str(geo.get("country")), _str(user.get("id")),
        ))
    return rows


def response_rows(value: bytes) -> list[tuple]:
    r = orjson.loads(value)
    rows = []
    for imp in r["imps"]:
        bid = imp.get("bid") or {}
        rows.append((
            r["rid"], str(imp["imp_id"]), r.get("request_id"), _ts(r.get("bid_at")),
            bid.get("price_usd"), bid.get("price"), bid.get("cur"), bid.get("crid"),
            bool(r.get("enriched")), r.get("profile"), r.get("segment"),
            r.get("interest_score"), imp.get("nobid_reason"),
        ))
    return rows


def outcome_rows(value: bytes) -> list[tuple]:
    o = orjson.loads(value)
    return [(
        o["rid"], str(o["imp_id"]), o.get("request_id"), o["outcome"], o.get("media"),
        o.get("segment"), bool(o.get("enriched")), o.get("at"), o.get("floor_usd"),
        o.get("bid_price_usd"), o.get("clearing_price_usd"), o.get("competitor_price_usd"),
        o.get("loss_reason"), o.get("nobid_reason"), o.get("strategy"),
        _ts(o.get("received_at")), _ts(o.get("bid_at")), _ts(o["decided_at"]),
    )]
