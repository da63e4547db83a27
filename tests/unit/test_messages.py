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
    assert all(len(r) == 32 and int(r, 16) >= 0 for r in rids)


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
    assert len(child) == 32 and child[:16] != parent[:16]
