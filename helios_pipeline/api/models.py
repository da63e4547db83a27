"""Response models of the analytics API: the OpenAPI document's shapes, with examples."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

_RID = "3b0f5c1e9a2d4c7f0000000000000001"


class Outcome(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": f"{_RID}:1", "rid": _RID, "imp_id": "1", "request_id": "9f1c2e7a",
        "timestamp": "2026-12-02T09:00:00.123Z", "decided_at": "2026-12-02T09:00:00.140Z",
        "user_id": "u00000026", "site_domain": "news.example.com", "app_bundle": None,
        "domain": "news.example.com", "country": "USA", "device_type": 2, "segment": "IAB3",
        "media_type": "banner", "enriched": True, "auction_type": 2, "floor": 0.54,
        "bid_price": 0.85, "win_price": 0.61, "win_status": True, "outcome": "won",
        "loss_reason": None, "nobid_reason": None, "competitor_price": 0.6,
        "crid": "cr-banner-iab3"}]})

    id: str = Field(description="<rid>:<imp_id>")
    rid: str = Field(description="Helios request id assigned by the gateway (32 hex)")
    imp_id: str = Field(description="OpenRTB imp.id")
    request_id: str | None = Field(description="OpenRTB BidRequest.id, as sent")
    timestamp: str | None = Field(description="when the gateway accepted the request (UTC)")
    decided_at: str | None
    user_id: str | None
    site_domain: str | None
    app_bundle: str | None
    domain: str | None = Field(description="site domain, else app bundle, else 'unknown'")
    country: str | None
    device_type: int | None
    segment: str | None = Field(description="the user's best interest category, or unknown")
    media_type: str | None
    enriched: bool
    auction_type: int | None = Field(description="1 first price, 2 second price")
    floor: float | None = Field(description="floor, USD CPM")
    bid_price: float | None = Field(description="our bid, USD CPM (null: no bid)")
    win_price: float | None = Field(description="clearing price, USD CPM (won only)")
    win_status: bool
    outcome: str | None = Field(description="won, lost or nobid")
    loss_reason: int | None = Field(description="OpenRTB loss reason code")
    nobid_reason: str | None
    competitor_price: float | None
    crid: str | None


class OutcomePage(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[Outcome]


class Stats(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "total_outcomes": 1200, "total_wins": 300, "total_losses": 600, "no_bid_count": 300,
        "win_rate": 33.3333, "total_revenue": 0.21, "average_win_price": 0.7,
        "average_bid_price": 0.9, "average_clearing_price": 0.7, "enriched_count": 1000,
        "bid_rate": 75.0, "ecpm": 0.7, "shading_ratio": 0.8, "floor_pass_rate": 100.0}]})

    total_outcomes: int
    total_wins: int
    total_losses: int
    no_bid_count: int
    win_rate: float = Field(description="wins / bids, percent")
    total_revenue: float = Field(description="spend: Σ clearing CPM / 1000, USD")
    average_win_price: float | None = Field(description="Σ clearing / wins, USD CPM")
    average_bid_price: float | None = Field(description="Σ bid / bids, USD CPM")
    average_clearing_price: float | None
    enriched_count: int
    bid_rate: float = Field(description="bids / imps offered, percent")
    ecpm: float | None = Field(description="spend / wins × 1000, USD")
    shading_ratio: float | None = Field(description="Σ clearing / Σ winning bids")
    floor_pass_rate: float = Field(description="bids at or above floor / bids, percent")


class DailyRow(BaseModel):
    date: str
    total: int
    wins: int
    bids: int = Field(description="won + lost (imps bid on)")
    losses: int
    revenue: float
    avg_win_price: float | None
    win_rate: float = Field(description="percent")
    ecpm: float | None
    group: str | int | None = Field(None, description="present with group_by")


class StoryImp(BaseModel):
    imp_id: str
    media_type: str | None
    floor: float | None
    bidfloor: float | None
    bidfloorcur: str | None
    bid: dict | None = Field(description="{price, crid}, null for a no-bid")
    nobid_reason: str | None
    auction: dict = Field(description="{type, floor, competing_price, clearing_price}")
    outcome: str | None
    loss_reason: int | None
    loss_reason_text: str | None
    decided_at: str | None


class RequestStory(BaseModel):
    rid: str
    request_id: str | None
    received_at: str | None
    context: dict
    profile: dict
    imps: list[StoryImp]


class Health(BaseModel):
    status: str
