"""Helm hook (templates/topics-job.yaml): create Helios's topics before the services start.

The three topics and their dead-letter topics get HELIOS_PARTITIONS partitions and
HELIOS_REPLICATION_FACTOR replicas (ingest_services.common.kafka.ensure_topics, the function
the consumers use with HELIOS_CREATE_TOPICS). On upgrade, a topic with fewer partitions than
asked is grown to that number (Kafka cannot shrink one), so raising topics.partitions lets
the consumers scale out. Exit 0 when done; 1 (the Job retries) while the broker refuses.
"""

import sys

from confluent_kafka.admin import AdminClient, NewPartitions

from ingest_services.common.kafka import ensure_topics
from ingest_services.settings import KafkaSettings, SettingsError, load_settings

try:
    s = load_settings(KafkaSettings)
except SettingsError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
try:
    ensure_topics(s, timeout=30)
    admin = AdminClient({"bootstrap.servers": s.kafka_bootstrap})
    topics = admin.list_topics(timeout=30).topics
    grow = [NewPartitions(t, s.partitions) for t in s.all_topics
            if len(topics[t].partitions) < s.partitions]
    for topic, fut in admin.create_partitions(grow, request_timeout=30).items() if grow else ():
        fut.result(30)
        print(f"grew {topic} to {s.partitions} partitions")
except Exception as exc:  # the Job's backoff retries; the message says what failed
    print(f"error: topics on {s.kafka_bootstrap}: {exc}", file=sys.stderr)
    sys.exit(1)
print(f"topics ready on {s.kafka_bootstrap}: {', '.join(s.all_topics)} "
      f"({s.partitions} partitions, replication factor {s.replication_factor})")
