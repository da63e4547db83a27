"""The Kafka topics as external assets: the lineage graph starts at the streams.

The services that write them run outside Dagster (Dagster's own advice for streams);
Dagster only observes them.
"""


import dagster as dg

TOPICS = {
    "bid_requests": "OpenRTB requests accepted by the gateway (key: rid)",
    "bid_responses": "The bidder's bids and no-bids, one message per request",
    "auction_outcomes": "One record per imp: won, lost or no-bid",
}

topic_specs = [
    dg.AssetSpec(
        key=dg.AssetKey(["topics", name]),
        description=desc,
        group_name="streams",
        kinds={"kafka"},
        metadata={"topic": name, "dead_letter_topic": f"{name}.dlq"},
    )
    for name, desc in TOPICS.items()
] + [
    dg.AssetSpec(
        key=dg.AssetKey(["topics", f"{name}_dlq"]),
        description=f"Dead letters of {name} (reason in the dlq.reason header)",
        group_name="streams",
        kinds={"kafka"},
        metadata={"topic": f"{name}.dlq"},
    )
    for name in TOPICS  # auction_outcomes.dlq too: created, so shown (empty unless used)
]

# The consumer group reading each topic, for lag (the warehouse keeps its own offsets).
CONSUMER_GROUPS = {"bid_requests": "helios-bidder", "bid_responses": "helios-auctioneer"}


@dg.multi_observable_source_asset(
    specs=topic_specs,
    required_resource_keys={"kafka"},
    description="End offsets and consumer lag of the Helios topics",
)
def observe_topics(context: dg.AssetExecutionContext):
    """End offsets come from the broker's high watermarks: exact on Apache Kafka, a lower
    bound on Tansu (it reports the start of the last batch + 1), which is said in the
    metadata rather than hidden."""
    from confluent_kafka import Consumer, TopicPartition

    kafka = context.resources.kafka
    for spec in topic_specs:
        topic = spec.metadata["topic"]
        ends = kafka.watermarks(topic)
        if not ends:
            yield dg.ObserveResult(asset_key=spec.key, metadata={"exists": False})
            continue
        md: dict = {"exists": True, "partitions": len(ends),
                    "end_offsets": dg.MetadataValue.json({str(k): v for k, v in ends.items()}),
                    "messages_approx": sum(ends.values()),
                    "watermarks_exact": "only on Apache Kafka (Tansu: lower bound)"}
        group = CONSUMER_GROUPS.get(topic)
        if group:
            g = Consumer({**kafka.reader_conf("dagster-observe-lag"), "group.id": group})
            try:
                committed = g.committed([TopicPartition(topic, p) for p in ends], timeout=5)
            finally:
                g.close()
            lag = sum(max(0, ends[tp.partition] - max(tp.offset, 0)) for tp in committed)
            md["consumer_group"] = group
            md["consumer_lag_approx"] = lag
        yield dg.ObserveResult(asset_key=spec.key, metadata=md,
                               data_version=dg.DataVersion(str(sum(ends.values()))))
