"""``UserProfileService`` over gRPC, backed by Redis, with the standard health service.

Unknown users are NOT_FOUND (single lookup) or listed in ``not_found`` (batch): the service
never invents an empty "enriched" profile. Health reports NOT_SERVING while Redis is down.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent import futures

import grpc
import redis
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import Counter, Histogram

from ingest_services.profiles import store
from ingest_services.profiles.generated import user_profile_pb2 as pb
from ingest_services.profiles.generated import user_profile_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
SERVICE_NAME = "helios.userprofile.UserProfileService"

LOOKUPS = Counter("profile_lookups_total", "Profiles looked up", ["result"])
RPC_SECONDS = Histogram(
    "profile_service_rpc_duration_seconds", "Server-side RPC time", ["method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)


class ProfileServicer(pb_grpc.UserProfileServiceServicer):
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def GetUserProfile(self, request, context):
        with RPC_SECONDS.labels("GetUserProfile").time():
            try:
                raw = store.read_profiles(self.redis, [request.user_id])[0]
            except redis.RedisError as exc:
                context.abort(grpc.StatusCode.UNAVAILABLE, f"profile store unavailable: {exc}")
            if raw is None:
                LOOKUPS.labels("not_found").inc()
                context.abort(grpc.StatusCode.NOT_FOUND, f"no profile for user {request.user_id!r}")
            LOOKUPS.labels("found").inc()
            return pb.GetUserProfileResponse(profile=pb.UserProfile.FromString(raw))

    def GetUserProfiles(self, request, context):
        with RPC_SECONDS.labels("GetUserProfiles").time():
            ids = list(dict.fromkeys(request.user_ids))
            try:
                raws = store.read_profiles(self.redis, ids)
            except redis.RedisError as exc:
                context.abort(grpc.StatusCode.UNAVAILABLE, f"profile store unavailable: {exc}")
            resp = pb.GetUserProfilesResponse()
            for uid, raw in zip(ids, raws, strict=True):
                if raw is None:
                    resp.not_found.append(uid)
                else:
                    resp.profiles.add().MergeFromString(raw)
            LOOKUPS.labels("found").inc(len(resp.profiles))
            LOOKUPS.labels("not_found").inc(len(resp.not_found))
            return resp


def _watch_redis(client: redis.Redis, hs: health.HealthServicer, stop: threading.Event) -> None:
    """Keep the health status in step with Redis reachability."""
    last = None
    while not stop.is_set():
        try:
            client.ping()
            status = health_pb2.HealthCheckResponse.SERVING
        except redis.RedisError:
            status = health_pb2.HealthCheckResponse.NOT_SERVING
        if status != last:
            hs.set("", status)
            hs.set(SERVICE_NAME, status)
            log.info("health", extra={"serving": status == health_pb2.HealthCheckResponse.SERVING})
            last = status
        stop.wait(1.0)


def build_server(
    redis_url: str, bind: str, workers: int = 8
) -> tuple[grpc.Server, threading.Event]:
    """A started server plus the event that stops its health watcher."""
    client = store.connect(redis_url)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    pb_grpc.add_UserProfileServiceServicer_to_server(ProfileServicer(client), server)
    hs = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(hs, server)
    if server.add_insecure_port(bind) == 0:
        raise OSError(f"cannot bind the profile service to {bind}")
    stop = threading.Event()
    threading.Thread(target=_watch_redis, args=(client, hs, stop), daemon=True).start()
    server.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not stop.is_set():  # first health verdict
        resp = hs.Check(health_pb2.HealthCheckRequest(service=""), None)
        if resp.status != health_pb2.HealthCheckResponse.UNKNOWN:
            break
        time.sleep(0.05)
    return server, stop
