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
# Rows per row group of the snapshot's tables. A story reads one row group's ``k`` and a
# few vectors of ``row``, so its cost hardly depends on the size since ``k`` exists (0.57–
# 1.0 ms of CPU at 16 k, 32 k, 64 k, 123 k, 10 M rows, same noise); a filtered page's
# Top-N skips row groups by ``received_at`` (smaller is better: segment page 2.5 / 1.5 /
# 4.5 ms at 16 k / 32 k / 64 k), and each row group's metadata stays in the API's memory once
# read (after stories and pages at 10 M rows: +26.5 / +22.3 / +19.6 MiB, buffer included).
# Measured on copies of one 10 M-row snapshot (bench/README.md, 2026-12-03).
ROW_GROUP_SIZE = 32_768
# The columns of a story / outcome answer, in the order of ``stories.row``
# (helios_pipeline/api/queries.py reads them by position).
STORY_COLUMNS = (
    "rid", "imp_id", "request_id", "received_at", "decided_at", "user_id", "site_domain",
    "app_bundle", "domain", "country", "device_type", "segment", "media", "enriched",
    "auction_type", "floor_usd", "bid_price_usd", "clearing_price_usd", "outcome",
    "loss_reason", "nobid_reason", "competitor_price_usd", "crid", "publisher_id", "bidfloor",
    "bidfloorcur", "profile")

# ``stories.k``: a request id's first 16 hex digits (its millisecond and the start of the
# gateway process's prefix, messages.rid_at) as a BIGINT, NULL where they are not hex. A
# lookup ``WHERE k = ?`` compares integers against exact per-row-group min/max, where
# ``WHERE rid = ?`` decompresses 16 k strings whose min/max DuckDB keeps to 8 bytes: 1.2 →
# 0.6 ms of CPU per story at 1 M rows (measured). Several requests can share a key; the
# reader keeps the rows of its rid.
STORY_KEY_SQL = "TRY_CAST('0x' || left(rid, 16) AS BIGINT)"


def story_key(rid: str) -> int | None:
    """``STORY_KEY_SQL`` computed in Python (None: look the rid up by itself). Where the two
    disagree (``int`` also takes a sign, ``0x`` or ``_``), the key finds no row and the
    reader falls back to the rid, so an odd rid costs a second query, never a wrong answer."""
    try:
        k = int(rid[:16], 16)
    except ValueError:
        return None
    return k if len(rid) >= 16 and k < 2**63 else None
