"""Profiles in Redis: one key per user holding the serialized ``UserProfile`` protobuf.

Protobuf bytes let the gRPC service answer a batch with MGET and no re-encoding work
beyond a C-level parse; the same writer serves the CLI seeder and the Dagster asset.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from ingest_services.profiles.generated import user_profile_pb2 as pb

KEY_PREFIX = "helios:profile:"


def key(user_id: str) -> str:
    return KEY_PREFIX + user_id


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)


def write_profiles(client: redis.Redis, profiles: Iterable[pb.UserProfile]) -> int:
    """Write one batch in a single round trip; returns how many were written."""
    pipe = client.pipeline(transaction=False)
    n = 0
    for p in profiles:
        pipe.set(key(p.user_id), p.SerializeToString(deterministic=True))  # stable map order
        n += 1
    pipe.execute()
    return n


def read_profiles(client: redis.Redis, user_ids: list[str]) -> list[bytes | None]:
    """Serialized profiles in the order asked; ``None`` where the user is unknown."""
    if not user_ids:
        return []
    return client.mget([key(u) for u in user_ids])
