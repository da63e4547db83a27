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
# Rows per row group of the snapshot's tables. A filtered page's Top-N skips row groups by
# ``received_at`` (smaller is better: segment page 2.5 / 1.5 / 4.5 ms at 16 k / 32 k / 64 k),
# and each row group's metadata stays in the API's memory once read (after stories and
# pages at 10 M rows: +26.5 / +22.3 / +19.6 MiB, buffer included). Measured on copies of one
# 10 M-row snapshot (bench/README.md, 2026-12-03).
ROW_GROUP_SIZE = 32_768
# The columns of a story / outcome answer, in the order of a stories ``row`` (below;
# helios_pipeline/api/queries.py reads them by position).
STORY_COLUMNS = (
    "rid", "imp_id", "request_id", "received_at", "decided_at", "user_id", "site_domain",
    "app_bundle", "domain", "country", "device_type", "segment", "media", "enriched",
    "auction_type", "floor_usd", "bid_price_usd", "clearing_price_usd", "outcome",
    "loss_reason", "nobid_reason", "competitor_price_usd", "crid", "publisher_id", "bidfloor",
    "bidfloorcur", "profile")

# The stories: every outcome row as one JSON array of ``STORY_COLUMNS``, keyed by (rid,
# imp_id), in SQLite files beside the snapshot (a base and a tail, named in its
# ``meta.stories``; serving/stories.py writes them, the API reads them). A story is a point
# lookup, and a B-tree answers it in 0.011 ms of CPU where DuckDB's narrowest scan (a key
# column's min/max, one row group) cost 0.8 ms at 1 M and 10 M rows, most of it a query's
# fixed cost of parsing, planning and starting a scan (bench/README.md, 2026-12-03).
STORIES_DDL = (
    "CREATE TABLE stories (rid TEXT NOT NULL, imp_id TEXT NOT NULL, row TEXT NOT NULL, "
    "PRIMARY KEY (rid, imp_id)) WITHOUT ROWID")
STORIES_PREFIX = ".stories-"  # <snapshot name>.stories-<token>.sqlite
