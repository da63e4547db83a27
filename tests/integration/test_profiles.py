"""The gRPC profile service and the bidder's client against real Redis and gRPC."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from helios_pipeline.stack import probes
from helios_pipeline.stack.servers import start_redis, wait_for
from ingest_services.common.circuit import CircuitBreaker, State
from ingest_services.profiles import store
from ingest_services.profiles.client import ProfileClient
from ingest_services.profiles.generated import user_profile_pb2 as pb
from ingest_services.profiles.generated import user_profile_pb2_grpc as pb_grpc
from ingest_services.profiles.seed import generate, load_into_redis, user_id
from ingest_services.profiles.service import SERVICE_NAME, build_server
from tests.integration.conftest import SEED_USERS

pytestmark = pytest.mark.integration


@pytest.fixture
def stub(profile_service):
    with grpc.insecure_channel(profile_service) as channel:
        yield pb_grpc.UserProfileServiceStub(channel)


def test_batched_lookup_returns_known_profiles_and_lists_unknown_users(stub):
    ids = [user_id(3), user_id(10), "nobody-1", user_id(3), "nobody-2"]
    resp = stub.GetUserProfiles(pb.GetUserProfilesRequest(user_ids=ids), timeout=5)
    found = {p.user_id: p for p in resp.profiles}
    assert set(found) == {user_id(3), user_id(10)}
    assert sorted(resp.not_found) == ["nobody-1", "nobody-2"]
    expected = {p.user_id: p for p in generate(11, seed=7, start=3)}
    assert found[user_id(3)] == expected[user_id(3)]  # exactly what the seeder wrote
    assert found[user_id(10)].interests  # real, enriched profiles


def test_single_lookup_of_an_unknown_user_is_not_found(stub):
    with pytest.raises(grpc.RpcError) as err:
        stub.GetUserProfile(pb.GetUserProfileRequest(user_id="nobody"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    ok = stub.GetUserProfile(pb.GetUserProfileRequest(user_id=user_id(SEED_USERS - 1)), timeout=5)
    assert ok.profile.user_id == user_id(SEED_USERS - 1)


def test_health_service_follows_redis(tmp_path):
    redis = start_redis(tmp_path)
    port = probes.free_port()
    server, stop = build_server(f"redis://127.0.0.1:{redis.port}/0", f"127.0.0.1:{port}")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            health = health_pb2_grpc.HealthStub(ch)

            def status():
                req = health_pb2.HealthCheckRequest(service=SERVICE_NAME)
                return health.Check(req, timeout=2).status

            assert status() == health_pb2.HealthCheckResponse.SERVING
            redis.stop()
            assert wait_for(lambda: status() == health_pb2.HealthCheckResponse.NOT_SERVING, 10)
            stub = pb_grpc.UserProfileServiceStub(ch)
            with pytest.raises(grpc.RpcError) as err:
                stub.GetUserProfiles(pb.GetUserProfilesRequest(user_ids=["u1"]), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        stop.set()
        server.stop(0).wait()
        redis.stop()


def test_client_breaker_opens_on_a_dead_service_and_closes_when_it_returns(tmp_path):
    now = [0.0]
    breaker = CircuitBreaker(failures=5, reset_s=30, clock=lambda: now[0])
    port = probes.free_port()
    client = ProfileClient(f"127.0.0.1:{port}", timeout_s=0.2, breaker=breaker)
    try:
        for _ in range(5):
            assert client.lookup([user_id(1)]).status == "unavailable"
        assert breaker.state == State.OPEN
        assert client.lookup([user_id(1)]).status == "circuit_open"  # no call made
        redis = start_redis(tmp_path)
        server, stop = build_server(f"redis://127.0.0.1:{redis.port}/0", f"127.0.0.1:{port}")
        try:
            load_into_redis(store.connect(f"redis://127.0.0.1:{redis.port}/0"), 5, seed=7)
            assert client.lookup([user_id(1)]).status == "circuit_open"  # still within reset

            def recovered() -> bool:
                # each try is a half-open trial; it may fail while the channel reconnects
                now[0] += 31
                return client.lookup([user_id(1)]).status == "ok"

            assert wait_for(recovered, 10)
            assert breaker.state == State.CLOSED
            got = client.lookup([user_id(1), "nobody"])
            assert set(got.profiles) == {user_id(1)}
        finally:
            stop.set()
            server.stop(0).wait()
            redis.stop()
    finally:
        client.close()
