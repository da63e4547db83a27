"""Message envelope: encode_request passthrough and loads() validation."""

import orjson
import pytest

from ingest_services.contracts import messages as m

RAW = (b'{ "zeta": 1,\n  "id": "abc", "imp": [{"id": "1", "banner": {"w": 1}}],'
       b' "ext": {"vendor": {"b": 2, "a": [1, 2.50, "x"]}}, "alpha": null }')


def test_encode_request_envelope_fields():
    out = m.encode_request("rid-1", RAW, ["1"], 123)
    obj = orjson.loads(out)
    assert obj["v"] == m.SCHEMA_VERSION == 1
    assert obj["rid"] == "rid-1"
    assert obj["received_at"] == 123
    assert obj["imp_ids"] == ["1"]
    assert obj["request"] == orjson.loads(RAW)


def test_encode_request_keeps_raw_bytes_verbatim():
    out = m.encode_request("rid-1", RAW, ["1"], 123)
    assert RAW in out
    assert out.endswith(RAW + b"}")
    obj = orjson.loads(out)
    assert list(obj["request"]) == ["zeta", "id", "imp", "ext", "alpha"]
    assert list(obj["request"]["ext"]["vendor"]) == ["b", "a"]


def test_encode_request_round_trips_through_loads():
    env = m.loads(m.encode_request("r", b'{"id":"x","imp":[]}', [], 0))
    assert env["request"] == {"id": "x", "imp": []}


@pytest.mark.parametrize(
    "data",
    [
        None,
        b"[]",
        b'"str"',
        b"1",
        b"null",
        b'{"v": 2, "rid": "x"}',
        b'{"rid": "x"}',
        b'{"v": "1", "rid": "x"}',
        b'{"v": 1}',
        b'{"v": 1, "rid": 5}',
        b"{broken",
    ],
)
def test_loads_rejects(data):
    with pytest.raises(ValueError):
        m.loads(data)


def test_loads_accepts_valid():
    assert m.loads(b'{"v": 1, "rid": "x", "extra": [1]}') == {"v": 1, "rid": "x", "extra": [1]}


def test_new_rid_unique_hex():
    rids = {m.new_rid() for _ in range(100)}
    assert len(rids) == 100
    assert all(len(r) == 32 and int(r, 16) >= 0 and r == r.lower() for r in rids)


def test_new_rid_sorts_by_creation_time(monkeypatch):
    import time

    rids = []
    for _ in range(5):
        rids += [m.new_rid() for _ in range(1000)]
        time.sleep(0.002)
    assert rids == sorted(rids) and len(set(rids)) == len(rids)
    assert int(rids[0][:12], 16) <= m.now_ms() and int(rids[-1][:12], 16) >= m.now_ms() - 5000
    # a clock step backwards does not break the order within the process
    back = m.now_ms() - 60_000
    monkeypatch.setattr(time, "time_ns", lambda: back * 1_000_000)
    later = [m.new_rid() for _ in range(3)]
    assert rids[-1] < later[0] < later[1] < later[2]


def test_rid_at_layout():
    assert m.rid_at(0x18F2A3B4C5D, "0a1b2c3d", 7) == "018f2a3b4c5d" "0a1b2c3d" "000000000007"
    assert m.rid_at(1, "ffffffff", 2) < m.rid_at(2, "00000000", 1)  # time first


def test_new_rid_differs_in_a_forked_worker():
    import os

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its first rid and leave at once
        os.write(write, m.new_rid().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    parent = m.new_rid()
    # the per-process prefix (hex 12-20, after the milliseconds) is drawn again in the child
    assert len(child) == 32 and child[12:20] != parent[12:20]
