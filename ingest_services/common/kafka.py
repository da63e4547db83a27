"""Kafka client configuration shared by every Helios process.

The values suit both Apache Kafka and the embedded Tansu broker (see DESIGN.md "quirks"):
classic group protocol, short fetch waits, batching producers, ``earliest`` reset with
committed offsets, idempotent producers with ``acks=all``. Every client's security
(SASL, TLS) comes from :func:`security_config`, the one place that reads those settings.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from ingest_services.settings import KafkaSettings as Settings


def security_config(s: Settings) -> dict:
    """``security.protocol``, SASL and TLS for one client: the one place every Kafka client
    Helios creates gets them from (producers, consumers, readers, the admin client), so a
    secured broker needs only the HELIOS_KAFKA_SECURITY_* / _SASL_* / _SSL_* settings, which
    settings.py has already checked (a mechanism with SASL, files that exist, both halves
    of a client certificate). The password goes to librdkafka only; nothing logs it."""
    conf: dict = {"security.protocol": s.kafka_security_protocol}
    if s.kafka_security_protocol.startswith("SASL_"):
        conf["sasl.mechanism"] = s.kafka_sasl_mechanism
        conf["sasl.username"] = s.kafka_sasl_username
        conf["sasl.password"] = s.kafka_sasl_password.get_secret_value()
    if s.kafka_security_protocol in ("SSL", "SASL_SSL"):
        if s.kafka_ssl_ca_location is not None:
            conf["ssl.ca.location"] = str(s.kafka_ssl_ca_location)
        if s.kafka_ssl_certificate_location is not None:
            conf["ssl.certificate.location"] = str(s.kafka_ssl_certificate_location)
            conf["ssl.key.location"] = str(s.kafka_ssl_key_location)
            if s.kafka_ssl_key_password.get_secret_value():
                conf["ssl.key.password"] = s.kafka_ssl_key_password.get_secret_value()
        conf["ssl.endpoint.identification.algorithm"] = (
            "https" if s.kafka_ssl_check_hostname else "none")
    return conf


def admin_config(s: Settings) -> dict:
    """The admin client (topic creation, listings)."""
    return {"bootstrap.servers": s.kafka_bootstrap, **security_config(s)}


def producer_config(s: Settings, client_id: str, *, linger_ms: int | None = None,
                    transactional_id: str | None = None) -> dict:
    """``transactional_id``: a transactional producer (HELIOS_KAFKA_TRANSACTIONS; see
    ``transactions.py``), which also needs ``init_transactions`` before producing."""
    extra = {} if transactional_id is None else {"transactional.id": transactional_id}
    return {
        "bootstrap.servers": s.kafka_bootstrap,
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": s.linger_ms if linger_ms is None else linger_ms,
        "compression.type": s.compression,
        "queue.buffering.max.messages": s.gateway_queue_max_messages,
        # librdkafka buffers up to 1 GiB by default; a bounded queue bounds RSS and turns
        # overload into back-pressure (BufferError → retry or 503) instead of memory growth
        "queue.buffering.max.kbytes": s.producer_buffer_kbytes,
        **extra,
        **security_config(s),
    }


def consumer_config(s: Settings, group_id: str, client_id: str) -> dict:
    return {
        "bootstrap.servers": s.kafka_bootstrap,
        "group.id": group_id,
        "client.id": client_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": s.session_timeout_ms,
        "heartbeat.interval.ms": s.heartbeat_interval_ms,
        "fetch.wait.max.ms": s.fetch_wait_max_ms,
        "isolation.level": "read_committed",
        # prefetch per consumer (default 64 MiB): enough for full batches, bounded RSS
        "queued.max.messages.kbytes": s.consumer_prefetch_kbytes,
        "statistics.interval.ms": 5000,
        **security_config(s),
    }


# librdkafka's own log lines (one per failed connect attempt, every 50 ms) would bury a
# CLI's one-line error when the broker is down: readers log through Python logging instead,
# where only critical lines pass; they report their own errors (from consume, list_topics).
QUIET_CLIENT_LOG = logging.getLogger("helios.librdkafka.reader")
QUIET_CLIENT_LOG.setLevel(logging.CRITICAL)
QUIET_CLIENT_LOG.propagate = False


def reader_config(s: Settings, client_id: str) -> dict:
    """A group-less reader (audit, ingest, tests): assigns partitions itself and commits
    nothing; its client's own log lines are quieted (QUIET_CLIENT_LOG)."""
    return {
        "logger": QUIET_CLIENT_LOG,
        "bootstrap.servers": s.kafka_bootstrap,
        "group.id": f"{client_id}-reader",  # required by the client, never used to commit
        "client.id": client_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": s.fetch_wait_max_ms,
        **security_config(s),
    }


def high_watermarks(consumer: Consumer, parts: Iterable[tuple[str, int]],
                    timeout: float = 10.0) -> dict[tuple[str, int], int]:
    """The high watermark of each (topic, partition), asked through an open consumer. On
    Tansu a lower bound of what a partition holds (docs/messages.md), which is what its
    users need: the sensor to see a topic move, an ingest run or an audit where to stop."""
    return {(topic, p): consumer.get_watermark_offsets(TopicPartition(topic, p),
                                                        timeout=timeout)[1]
            for topic, p in parts}


def ensure_topics(s: Settings, topics: list[str] | None = None, timeout: float = 15.0) -> None:
    """Create topics up front (Tansu never auto-creates on subscribe); existing ones are fine."""
    admin = AdminClient(admin_config(s))
    wanted = topics or s.all_topics
    existing = set(admin.list_topics(timeout=timeout).topics)
    new = [
        NewTopic(t, num_partitions=s.partitions, replication_factor=s.replication_factor)
        for t in wanted
        if t not in existing
    ]
    if not new:
        return
    for topic, fut in admin.create_topics(new, request_timeout=timeout).items():
        try:
            fut.result(timeout)
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise RuntimeError(f"could not create topic {topic}: {exc}") from exc
