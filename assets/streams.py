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
    for name in ("bid_requests", "bid_responses")
]
