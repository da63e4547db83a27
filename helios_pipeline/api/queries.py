"""Query parameters → SQL over the serving snapshot. Pure functions; parameters are bound,
never formatted into the SQL text (only whitelisted column names are).

Statistics filtered only on what the ``cube`` is grouped by (day, site, segment, media,
enriched, outcome, loss reason) answer from the cube; a filter on ``user_id`` or a price
range scans ``outcomes``. Both compute the KPIs of DESIGN.md from summed counts.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta

from helios_pipeline.serving.layout import ROLLUPS, STORY_COLUMNS

ORDERING = {"timestamp": "received_at", "win_price": "clearing_price_usd",
            "bid_price": "bid_price_usd"}
GROUP_BY = {"site": "site_domain", "segment": "segment", "media_type": "media",
            "hour": "hour"}
MEDIA = ("banner", "video", "audio", "native")
OUTCOMES = ("won", "lost", "nobid")


@dataclass(frozen=True)
class Filters:
    user_id: str | None = None
    site_domain: str | None = None
    win_status: bool | None = None
    enriched: bool | None = None
    min_price: float | None = None
    max_price: float | None = None
    date_from: date | None = None
    date_to: date | None = None
    media_type: str | None = None
    segment: str | None = None
    outcome: str | None = None
    loss_reason: int | None = None

    def on_cube(self) -> bool:
        """True when every filter set is a dimension of the cube."""
        return self.user_id is None and self.min_price is None and self.max_price is None

    def dims(self) -> set[str]:
        """The cube dimensions the filters use."""
        used = {
            "site_domain": self.site_domain is not None,
            "outcome": self.win_status is not None or self.outcome is not None,
            "enriched": self.enriched is not None,
            "day": self.date_from is not None or self.date_to is not None,
            "media": self.media_type is not None,
            "segment": self.segment is not None,
            "loss_reason": self.loss_reason is not None,
        }
        return {d for d, on in used.items() if on}

    def source(self, group: str | None = None) -> str:
        """The smallest pre-aggregated table that answers these filters (and ``group``),
        or ``outcomes`` when a filter is not a cube dimension."""
        if not self.on_cube():
            return "outcomes"
        need = self.dims() | ({group} if group else set())
        for name, dims in ROLLUPS.items():
            if need <= set(dims):
                return name
        return "cube"

    def where(self) -> tuple[str, list]:
        """``WHERE`` clause and parameters; valid over ``outcomes`` and over ``cube``."""
        clauses: list[str] = []
        params: list = []

        def add(sql: str, value: object) -> None:
            clauses.append(sql)
            params.append(value)

        if self.user_id is not None:
            add("user_id = ?", self.user_id)
        if self.site_domain is not None:
            add("site_domain = ?", self.site_domain)
        if self.win_status is True:
            clauses.append("outcome = 'won'")
        elif self.win_status is False:
            clauses.append("outcome <> 'won'")
        if self.enriched is not None:
            add("coalesce(enriched, false) = ?", self.enriched)
        if self.min_price is not None:
            add("bid_price_usd >= ?", self.min_price)
        if self.max_price is not None:
            add("bid_price_usd <= ?", self.max_price)
        if self.date_from is not None:
            add("day >= ?", self.date_from)
        if self.date_to is not None:
            add("day <= ?", self.date_to)
        if self.media_type is not None:
            add("media = ?", self.media_type)
        if self.segment is not None:
            add("segment = ?", self.segment)
        if self.outcome is not None:
            add("outcome = ?", self.outcome)
        if self.loss_reason is not None:
            add("loss_reason = ?", self.loss_reason)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def as_query(self) -> dict[str, str]:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None:
                out[f.name] = str(v).lower() if isinstance(v, bool) else str(v)
        return out


# Per-row KPI sums. Over ``cube`` each is a sum of pre-summed columns; over ``outcomes``
# the same quantities from the rows.
_SUMS_CUBE = """
    coalesce(sum(n), 0) AS total,
    coalesce(sum(n) FILTER (WHERE outcome = 'won'), 0) AS wins,
    coalesce(sum(n) FILTER (WHERE outcome = 'lost'), 0) AS losses,
    coalesce(sum(n) FILTER (WHERE outcome = 'nobid'), 0) AS nobids,
    coalesce(sum(n) FILTER (WHERE enriched), 0) AS enriched,
    coalesce(sum(bid_sum), 0) AS bid_sum,
    coalesce(sum(clearing_sum), 0) AS clearing_sum,
    coalesce(sum(won_bid_sum), 0) AS won_bid_sum,
    coalesce(sum(floor_passes), 0) AS floor_passes"""
_SUMS_ROWS = """
    count(*) AS total,
    count(*) FILTER (WHERE outcome = 'won') AS wins,
    count(*) FILTER (WHERE outcome = 'lost') AS losses,
    count(*) FILTER (WHERE outcome = 'nobid') AS nobids,
    count(*) FILTER (WHERE enriched) AS enriched,
    coalesce(sum(bid_price_usd) FILTER (WHERE outcome IN ('won', 'lost')), 0) AS bid_sum,
    coalesce(sum(clearing_price_usd) FILTER (WHERE outcome = 'won'), 0) AS clearing_sum,
    coalesce(sum(bid_price_usd) FILTER (WHERE outcome = 'won'), 0) AS won_bid_sum,
    count(*) FILTER (WHERE outcome IN ('won', 'lost')
                     AND bid_price_usd >= coalesce(floor_usd, 0)) AS floor_passes"""


def sums_sql(f: Filters, group: str | None = None) -> tuple[str, list]:
    """Summed counts (optionally per day and ``group`` column) for the filtered outcomes."""
    where, params = f.where()
    source = f.source(group if group not in (None, "NULL") else None)  # every roll-up has day
    sums = _SUMS_ROWS if source == "outcomes" else _SUMS_CUBE
    if group is None:
        return f"SELECT {sums} FROM {source}{where}", params
    if group == "hour" and source == "outcomes":
        group = "CAST(extract(hour FROM received_at AT TIME ZONE 'UTC') AS INTEGER)"
    return (f"SELECT day, {group} AS grp, {sums} FROM {source}{where} "
            f"GROUP BY ALL ORDER BY day, grp NULLS LAST"), params


def kpis(total, wins, losses, nobids, enriched, bid_sum, clearing_sum, won_bid_sum,
         floor_passes) -> dict:
    """The stats body from summed counts (DESIGN.md: rates from sums, never averaged)."""
    bids = wins + losses

    def ratio(a: float, b: float) -> float | None:
        return a / b if b else None

    def pct(a: float, b: float) -> float:
        return round(100.0 * a / b, 4) if b else 0.0

    avg_clear = ratio(clearing_sum, wins)
    return {
        "total_outcomes": total,
        "total_wins": wins,
        "total_losses": losses,
        "no_bid_count": nobids,
        "win_rate": pct(wins, bids),
        "total_revenue": round(clearing_sum / 1000, 6),
        "average_win_price": avg_clear,
        "average_bid_price": ratio(bid_sum, bids),
        "average_clearing_price": avg_clear,
        "enriched_count": enriched,
        "bid_rate": pct(bids, total),
        "ecpm": avg_clear,  # spend / wins × 1000 = Σ clearing / wins
        "shading_ratio": ratio(clearing_sum, won_bid_sum),
        "floor_pass_rate": pct(floor_passes, bids),
    }


def daily_row(day: date, sums: tuple, group: object = None, grouped: bool = False) -> dict:
    total, wins, losses, _nobids, _enriched, _bid_sum, clearing_sum, _wb, _fp = sums
    bids = wins + losses
    row = {
        "date": day.isoformat(),
        "total": total,
        "wins": wins,
        "bids": bids,
        "losses": losses,
        "revenue": round(clearing_sum / 1000, 6),
        "avg_win_price": clearing_sum / wins if wins else None,
        "win_rate": round(100.0 * wins / bids, 4) if bids else 0.0,
        "ecpm": clearing_sum / wins if wins else None,
    }
    if grouped:
        row["group"] = group
    return row


OUTCOME_COLUMNS = ", ".join(STORY_COLUMNS)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso(ts) -> str | None:
    """A time as the API shows it (UTC, milliseconds); an ``int`` is epoch microseconds
    (the rows of the snapshot's stories files)."""
    if ts is None or isinstance(ts, str):
        return ts
    if isinstance(ts, int):
        ts = _EPOCH + timedelta(microseconds=ts)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def outcome_json(row: tuple) -> dict:
    (rid, imp_id, request_id, received_at, decided_at, user_id, site_domain, app_bundle,
     domain, country, device_type, segment, media, enriched, auction_type, floor_usd,
     bid_price, clearing, outcome, loss_reason, nobid_reason, competitor, crid,
     *_rest) = row
    return {
        "id": f"{rid}:{imp_id}", "rid": rid, "imp_id": imp_id, "request_id": request_id,
        "timestamp": _iso(received_at), "decided_at": _iso(decided_at), "user_id": user_id,
        "site_domain": site_domain, "app_bundle": app_bundle, "domain": domain,
        "country": country, "device_type": device_type, "segment": segment,
        "media_type": media, "enriched": bool(enriched), "auction_type": auction_type,
        "floor": floor_usd, "bid_price": bid_price, "win_price": clearing,
        "win_status": outcome == "won", "outcome": outcome, "loss_reason": loss_reason,
        "nobid_reason": nobid_reason, "competitor_price": competitor, "crid": crid,
    }


# OpenRTB 2.6 loss reason codes the auctioneer emits (and a few neighbours), for the story.
LOSS_REASONS = {
    0: "Bid won", 1: "Internal error", 2: "Impression opportunity expired",
    3: "Invalid bid response", 100: "Bid was below auction floor",
    101: "Bid was below deal floor", 102: "Lost to higher bid",
    103: "Lost to a bid for a PMP deal", 104: "Buyer seat blocked",
}


def story_json(rows: list[tuple]) -> dict:
    """``/api/requests/{rid}/`` from the request's outcome rows (one per imp)."""
    first = rows[0]
    (rid, _imp, request_id, received_at, _dec, user_id, site_domain, app_bundle, _domain,
     country, device_type, segment, _media, enriched, auction_type, *_x) = first
    publisher_id, profile = first[23], first[26]
    imps = []
    for r in rows:
        (_, imp_id, _, _, decided_at, _, _, _, _, _, _, _, media, _, at, floor_usd, bid_price,
         clearing, outcome, loss_reason, nobid_reason, competitor, crid, _, bidfloor,
         bidfloorcur, _) = r
        imps.append({
            "imp_id": imp_id, "media_type": media, "floor": floor_usd, "bidfloor": bidfloor,
            "bidfloorcur": bidfloorcur,
            "bid": None if bid_price is None else {"price": bid_price, "crid": crid},
            "nobid_reason": nobid_reason,
            "auction": {"type": at, "floor": floor_usd, "competing_price": competitor,
                        "clearing_price": clearing},
            "outcome": outcome, "loss_reason": loss_reason,
            "loss_reason_text": LOSS_REASONS.get(loss_reason) if loss_reason is not None
            else None,
            "decided_at": _iso(decided_at),
        })
    return {
        "rid": rid, "request_id": request_id, "received_at": _iso(received_at),
        "context": {"site_domain": site_domain, "app_bundle": app_bundle,
                    "publisher_id": publisher_id, "device_type": device_type,
                    "country": country, "user_id": user_id, "auction_type": auction_type},
        "profile": {"status": profile, "enriched": bool(enriched), "segment": segment},
        "imps": imps,
    }
