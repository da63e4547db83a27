"""The serving snapshot's shape: its statistics' dimensions and roll-ups, its row-group size
and the columns of a story, in one place for the writer (serving/snapshot.py) and the
reader (api/queries.py). No imports: the API process loads this and nothing of the
warehouse side (pyarrow, numpy), which would cost it ~40 MiB of its 150 MiB budget.
"""

CUBE_DIMS = ("day", "hour", "site_domain", "segment", "media", "enriched", "outcome",
             "loss_reason")
# Smaller roll-ups of the cube: a query uses the smallest one whose dimensions cover its
# filters and grouping (helios_pipeline/api/queries.py). With a long tail of sites the full
# cube is nearly as big as the table; these stay at thousands of rows.
ROLLUPS = {
    "cube_day": ("day", "segment", "media", "enriched", "outcome", "loss_reason"),
    "cube_hour": ("day", "hour", "enriched", "outcome"),
    "cube_site": ("day", "site_domain", "enriched", "outcome", "loss_reason"),
}
ROW_GROUP_SIZE = 16_384
# The columns of a story / outcome answer, in the order of ``stories.row``
# (helios_pipeline/api/queries.py reads them by position).
STORY_COLUMNS = (
    "rid", "imp_id", "request_id", "received_at", "decided_at", "user_id", "site_domain",
    "app_bundle", "domain", "country", "device_type", "segment", "media", "enriched",
    "auction_type", "floor_usd", "bid_price_usd", "clearing_price_usd", "outcome",
    "loss_reason", "nobid_reason", "competitor_price_usd", "crid", "publisher_id", "bidfloor",
    "bidfloorcur", "profile")
