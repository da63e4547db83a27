"""Helm hook (templates/topics-job.yaml): create Helios's topics before the services start.

The three topics and their dead-letter topics get HELIOS_PARTITIONS partitions and
HELIOS_REPLICATION_FACTOR replicas (ingest_services.common.kafka.ensure_topics, the function
the consumers use with HELIOS_CREATE_TOPICS). Existing topics are left as they are; one with
fewer partitions than asked is named in a warning (grow it with the broker's tools, see
docs/deploy.md "Scaling"). Exit 0 when done, 1 (the Job retries) while the broker refuses,
2 for a bad setting.
"""

import sys

from confluent_kafka.admin import AdminClient

from ingest_services.common.kafka import admin_config, ensure_topics
from ingest_services.settings import KafkaSettings, SettingsError, load_settings

try:
    s = load_settings(KafkaSettings)
except SettingsError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
try:
    ensure_topics(s, timeout=30)
    topics = AdminClient(admin_config(s)).list_topics(timeout=30).topics
except Exception as exc:  # the Job's backoff retries; the message says what failed
    print(f"error: topics on {s.kafka_bootstrap}: {exc}", file=sys.stderr)
    sys.exit(1)
for topic in s.all_topics:
    have = len(topics[topic].partitions)
    if have < s.partitions:
        print(f"warning: topic {topic} has {have} partitions, topics.partitions asks "
              f"{s.partitions}: grow it with the broker's tools (docs/deploy.md, Scaling)")
print(f"topics ready on {s.kafka_bootstrap}: {', '.join(s.all_topics)} "
      f"({s.partitions} partitions, replication factor {s.replication_factor})")
