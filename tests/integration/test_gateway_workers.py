"""The gateway with several worker processes, under each server it can run (uvicorn,
granian): every request answered, and /metrics on any worker sums every worker's counters
(Prometheus multiprocess mode), so a scrape does not depend on which worker answers it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict

from helios_pipeline.stack import probes
from helios_pipeline.stack.servers import wait_for
from ingest_services.common.kafka import ensure_topics
from ingest_services.settings import load_settings
from tests.integration.test_gateway import series

pytestmark = pytest.mark.integration
N = 200


def _accepted_per_pid(metrics_dir: Path) -> dict[str, float]:
    """bid_requests_total{status="accepted"} as each worker process wrote it."""
    out: dict[str, float] = {}
    for f in metrics_dir.glob("counter_*.db"):
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(f)):
            if '"bid_requests_total"' in key and '"accepted"' in key:
                out[f.stem] = out.get(f.stem, 0.0) + value
    return out


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_two_workers_metrics_sum_over_workers(server, tansu, tmp_path, examples):
    port = probes.free_port()
    tag = uuid.uuid4().hex[:10]
    metrics_dir = tmp_path / "metrics"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HELIOS_")},
           "HELIOS_KAFKA_BOOTSTRAP": f"127.0.0.1:{tansu.port}", "HELIOS_GATEWAY_PORT": str(port),
           "HELIOS_TOPIC_REQUESTS": f"gw-w-{tag}", "HELIOS_LOG_LEVEL": "WARNING",
           "HELIOS_GATEWAY_SERVER": server, "HELIOS_GATEWAY_METRICS_DIR": str(metrics_dir),
           "HELIOS_HOME": str(tmp_path / "home")}
    ensure_topics(load_settings(kafka_bootstrap=env["HELIOS_KAFKA_BOOTSTRAP"],
                                topic_requests=env["HELIOS_TOPIC_REQUESTS"]))
    proc = subprocess.Popen([sys.executable, "-m", "helios_pipeline.cli", "serve", "gateway",
                             "--workers", "2"], env=env, stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "gateway.err", "w"))  # noqa: SIM115
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(lambda: probes.http_ok(f"{url}/readyz"), 60), \
            (tmp_path / "gateway.err").read_text()[-2000:]
        body = examples[0].read_bytes()

        def some(n: int) -> list[int]:  # a new connection each: the workers share accepts
            with httpx.Client() as c:
                return [c.post(f"{url}/bid", content=body, headers={
                    "content-type": "application/json", "connection": "close"}).status_code
                    for _ in range(n)]

        # /readyz answers once one worker is up: send until both have served (a worker
        # still starting takes no connection), at most 10 rounds
        codes: list[int] = []
        per_pid: dict[str, float] = {}
        with ThreadPoolExecutor(8) as pool:
            for _ in range(10):
                codes += [c for part in pool.map(some, [N // 8] * 8) for c in part]
                per_pid = _accepted_per_pid(metrics_dir)
                if len([v for v in per_pid.values() if v > 0]) == 2:
                    break
        sent = len(codes)
        assert codes == [202] * sent
        assert sum(per_pid.values()) == sent
        assert len([v for v in per_pid.values() if v > 0]) == 2, per_pid  # both served
        for _ in range(6):  # whichever worker answers the scrape
            page = httpx.get(f"{url}/metrics").text
            assert series(page, 'bid_requests_total{status="accepted"}') == sent
            assert series(page, 'gateway_request_duration_seconds_count{endpoint="/bid"}') \
                == sent
    finally:
        proc.terminate()
        proc.wait(20)
