"""Prometheus metrics shared by several services (defined once: one registry per process)."""

from __future__ import annotations

from prometheus_client import Counter

PUBLISH_ERRORS = Counter("kafka_publish_errors_total", "Produce failures (not acknowledged)")
