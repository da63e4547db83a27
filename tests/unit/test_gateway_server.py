"""Gateway server setup (ingest_services/gateway/server.py): worker default, multiprocess
metrics directory (pure logic; the servers themselves: tests/integration/test_gateway_workers)."""

import os

import pytest

from ingest_services.gateway import server
from ingest_services.settings import GatewaySettings


@pytest.fixture(autouse=True)
def _environment_restored():
    """prepare_metrics_dir() sets PROMETHEUS_MULTIPROC_DIR in this process; left behind, it
    put every later stack's gateway (children inherit it) into multiprocess mode. (pytest's
    monkeypatch.delenv of an unset variable records nothing to restore.)"""
    before = os.environ.get(server.MULTIPROC_ENV)
    yield
    if before is None:
        os.environ.pop(server.MULTIPROC_ENV, None)
    else:
        os.environ[server.MULTIPROC_ENV] = before


def test_default_workers_is_one_per_usable_core_at_most_8():
    assert server.default_workers() == max(1, min(8, len(os.sched_getaffinity(0))))
    assert GatewaySettings(gateway_workers=0).gateway_workers == 0  # 0 asks for it


def test_one_worker_keeps_the_plain_registry(monkeypatch):
    monkeypatch.delenv(server.MULTIPROC_ENV, raising=False)
    assert server.prepare_metrics_dir(GatewaySettings(), 1) is None
    assert server.MULTIPROC_ENV not in os.environ


def test_several_workers_get_an_emptied_multiprocess_dir(monkeypatch, tmp_path):
    monkeypatch.delenv(server.MULTIPROC_ENV, raising=False)
    d = tmp_path / "m"
    d.mkdir()
    (d / "counter_123.db").write_bytes(b"old counts")
    (d / "keep.txt").write_text("not a metrics file")
    got = server.prepare_metrics_dir(GatewaySettings(gateway_metrics_dir=str(d)), 2)
    assert got == d
    assert os.environ[server.MULTIPROC_ENV] == str(d)
    assert sorted(p.name for p in d.iterdir()) == ["keep.txt"]
    monkeypatch.delenv(server.MULTIPROC_ENV)
    fresh = server.prepare_metrics_dir(GatewaySettings(), 2)  # no setting: a temp dir
    assert fresh is not None and fresh.is_dir() and not any(fresh.iterdir())
    fresh.rmdir()
