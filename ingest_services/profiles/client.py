"""The bidder's side of the profile service: one batched call per batch, with a deadline
and a circuit breaker so a slow or dead profile path degrades bids instead of stalling.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import grpc
from prometheus_client import Counter, Gauge, Histogram

from ingest_services.common.circuit import CircuitBreaker, State
from ingest_services.profiles.generated import user_profile_pb2 as pb
from ingest_services.profiles.generated import user_profile_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

ENRICHMENT = Counter(
    "user_profile_enrichment_total", "Profile lookups by outcome",
    ["status"],  # found | not_found | no_user | unavailable | circuit_open
)
RPC_SECONDS = Histogram(
    "user_profile_rpc_duration_seconds", "Client-side batched profile RPC time",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
CIRCUIT = Gauge("circuit_breaker_state", "0 closed, 1 open, 2 half-open", ["service"])


@dataclass(slots=True)
class Lookup:
    profiles: dict[str, pb.UserProfile]
    status: str  # "ok" (answered, some may be not found), "unavailable", "circuit_open"


class ProfileClient:
    def __init__(self, addr: str, timeout_s: float, breaker: CircuitBreaker) -> None:
        self.timeout_s = timeout_s
        self.breaker = breaker
        self.channel = grpc.insecure_channel(addr)
        self.stub = pb_grpc.UserProfileServiceStub(self.channel)
        CIRCUIT.labels("profile_service").set(int(breaker.state))
        breaker.on_change = self._state_changed

    @staticmethod
    def _state_changed(state: State) -> None:
        CIRCUIT.labels("profile_service").set(int(state))
        log.warning("circuit breaker", extra={"service": "profile_service", "state": state.name})

    def lookup(self, user_ids: list[str]) -> Lookup:
        """Profiles of the distinct ``user_ids`` that exist; never raises."""
        ids = list(dict.fromkeys(u for u in user_ids if u))
        if not ids:
            return Lookup({}, "ok")
        if not self.breaker.allow():
            ENRICHMENT.labels("circuit_open").inc(len(ids))
            return Lookup({}, "circuit_open")
        started = time.perf_counter()
        try:
            resp = self.stub.GetUserProfiles(
                pb.GetUserProfilesRequest(user_ids=ids), timeout=self.timeout_s
            )
        except grpc.RpcError as exc:
            self.breaker.record_failure()
            ENRICHMENT.labels("unavailable").inc(len(ids))
            log.warning("profile lookup failed", extra={"code": str(exc.code()), "users": len(ids)})
            return Lookup({}, "unavailable")
        finally:
            RPC_SECONDS.observe(time.perf_counter() - started)
        self.breaker.record_success()
        ENRICHMENT.labels("found").inc(len(resp.profiles))
        ENRICHMENT.labels("not_found").inc(len(resp.not_found))
        return Lookup({p.user_id: p for p in resp.profiles}, "ok")

    def close(self) -> None:
        self.channel.close()
