"""Raw tables ingested from the topics, exactly once (see warehouse/ingest.py).

Each run reads a bounded batch from the offsets stored in the warehouse and commits rows
and offsets together; the sensor in ``sensors/`` asks for runs when the topic moves.
"""


import dagster as dg

from assets.columns import freshness, schema_metadata
from helios_pipeline.resources import DuckDBWarehouse, KafkaResource
from helios_pipeline.warehouse import tables
from helios_pipeline.warehouse.ingest import ingest_topic, stored_offsets

TIME_COLUMN = {"bid_requests": "received_at", "bid_responses": "bid_at",
               "auction_outcomes": "decided_at"}


class IngestConfig(dg.Config):
    max_messages: int = 500_000
    idle_seconds: float = 1.0


def _ingest_asset(table: str, description: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=table,
        group_name="warehouse",
        kinds={"duckdb", "kafka"},
        pool="duckdb_writer",
        deps=[dg.AssetKey(["topics", table])],
        metadata=schema_metadata(tables.RAW[table]),
        description=description,
    )
    def _asset(
        context: dg.AssetExecutionContext,
        config: IngestConfig,
        kafka: KafkaResource,
        warehouse: DuckDBWarehouse,
    ) -> dg.MaterializeResult:
        topic = kafka.topic(table)
        stop_at = kafka.watermarks(topic)  # what is there now; later arrivals: the next run
        with warehouse.open() as db:  # DuckDB or PostgreSQL (HELIOS_WAREHOUSE_BACKEND)
            res = ingest_topic(db, kafka.reader_conf(f"dagster-ingest-{table}"), topic, table,
                               config.max_messages, config.idle_seconds,
                               gap_wait_s=kafka.gap_wait_s(), stop_at=stop_at)
            total, newest = db.execute(
                f"SELECT count(*), max({TIME_COLUMN[table]}) FROM {table}")[0]
            offsets = stored_offsets(db, topic)  # every partition, not only this batch's
        context.log.info(f"{table}: {res.messages} messages → {res.inserted} new rows")
        return dg.MaterializeResult(metadata={
            "dagster/row_count": total,
            "messages_read": res.messages,
            "rows_inserted": res.inserted,
            "rejected_messages": res.rejected,
            # gaps in the offsets the reader was handed (common/offset_gaps.py): refetched
            # ones were re-read whole; skipped ones were accepted after the wait
            "offset_gaps_refetched": res.gaps_refetched,
            "offset_gaps_skipped": res.gaps_skipped,
            # what the outcome sensor compares with the watermarks to know it is idle
            "next_offsets": dg.MetadataValue.json({str(k): v for k, v in offsets.items()}),
            **freshness(newest),
        }, data_version=dg.DataVersion(str(sum(offsets.values()))))

    return _asset


raw_bid_requests = _ingest_asset("bid_requests", "Accepted requests, one row per imp")
raw_bid_responses = _ingest_asset("bid_responses", "Bids and no-bids, one row per imp")
raw_auction_outcomes = _ingest_asset("auction_outcomes", "Auction outcomes, one row per imp")
