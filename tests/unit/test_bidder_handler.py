"""BidderHandler: enrichment status, segment, unenriched bids, dead letters, one record each."""

import orjson

from ingest_services.contracts import messages as m
from ingest_services.profiles.client import Lookup
from ingest_services.profiles.generated.user_profile_pb2 import UserProfile
from tests.unit.fakes import FakeMsg as _FakeMsg


def FakeMsg(value, **kw):
    return _FakeMsg(value, **{"topic": "bid_requests", "partition": 2, **kw})


class FakeProfiles:
    def __init__(self, profiles, status="ok"):
        self.profiles = profiles
        self.status = status
        self.calls = []

    def lookup(self, user_ids):
        self.calls.append(list(user_ids))
        if self.status != "ok":
            return Lookup({}, self.status)
        return Lookup({u: self.profiles[u] for u in user_ids if u in self.profiles}, "ok")


def _profile(uid, interests):
    p = UserProfile(user_id=uid, locale="en-US")
    for cat, score in interests:
        p.interests.add(category=cat, score=score)
    return p


KNOWN = _profile("u1", [("IAB2", 0.4), ("IAB13", 0.95), ("IAB7", 0.6)])


def _msg(rid, request, offset=0):
    raw = orjson.dumps(request)
    ids = [i["id"] for i in request.get("imp", [])]
    return FakeMsg(m.encode_request(rid, raw, ids, 1_700_000_000_000), key=rid.encode(),
                   offset=offset)


def _req(user=None, imps=None, **extra):
    r = {"id": "req", "imp": imps or [{"id": "1", "banner": {"w": 300, "h": 250}}], **extra}
    if user is not None:
        r["user"] = {"id": user}
    return r


def _run(profiles, *msgs):
    from ingest_services.bidder.handler import BidderHandler

    return BidderHandler(profiles, "bid_responses")(list(msgs))


def test_known_user_is_enriched_with_best_segment():
    (rec,) = _run(FakeProfiles({"u1": KNOWN}), _msg("r1", _req("u1")))
    assert rec.topic == "bid_responses"
    assert rec.key == "r1"
    out = orjson.loads(rec.value)
    assert out["v"] == 1
    assert out["rid"] == "r1"
    assert out["request_id"] == "req"
    assert out["received_at"] == 1_700_000_000_000
    assert out["user_id"] == "u1"
    assert out["profile"] == "found"
    assert out["enriched"] is True
    assert out["segment"] == "IAB13"
    assert abs(out["interest_score"] - 0.95) < 1e-6
    (imp,) = out["imps"]
    assert imp["bid"]["price_usd"] == 1.20
    assert imp["bid"]["interest"] == "IAB13"


def test_unknown_user_not_found():
    (rec,) = _run(FakeProfiles({"u1": KNOWN}), _msg("r2", _req("u999")))
    out = orjson.loads(rec.value)
    assert out["profile"] == "not_found"
    assert out["enriched"] is False
    assert out["segment"] == "unknown"
    assert out["imps"][0]["bid"]["price_usd"] == 0.35


def test_circuit_open_bids_unenriched():
    imps = [{"id": "1", "banner": {}}, {"id": "2", "video": {"mimes": ["video/mp4"]}},
            {"id": "3", "native": {"request": "{}"}}]
    (rec,) = _run(FakeProfiles({"u1": KNOWN}, status="circuit_open"),
                  _msg("r3", _req("u1", imps)))
    out = orjson.loads(rec.value)
    assert out["profile"] == "circuit_open"
    assert out["enriched"] is False
    assert [i["bid"]["price_usd"] for i in out["imps"]] == [0.35, 0.875, 0.455]


def test_unavailable_status_passes_through():
    (rec,) = _run(FakeProfiles({}, status="unavailable"), _msg("r3", _req("u1")))
    assert orjson.loads(rec.value)["profile"] == "unavailable"


def test_no_user():
    fp = FakeProfiles({"u1": KNOWN})
    (rec,) = _run(fp, _msg("r4", _req()))
    out = orjson.loads(rec.value)
    assert out["profile"] == "no_user"
    assert out["user_id"] is None
    assert out["enriched"] is False
    assert fp.calls == [[]]


def test_one_batched_lookup_and_one_record_per_request_keyed_by_rid():
    fp = FakeProfiles({"u1": KNOWN})
    msgs = [_msg("a", _req("u1")), _msg("b", _req("u2")), _msg("c", _req())]
    recs = _run(fp, *msgs)
    assert len(fp.calls) == 1
    assert sorted(fp.calls[0]) == ["u1", "u2"]
    assert [r.key for r in recs] == ["a", "b", "c"]
    assert [orjson.loads(r.value)["rid"] for r in recs] == ["a", "b", "c"]


def test_poison_message_is_one_dead_letter():
    good = _msg("g", _req("u1"))
    poison = FakeMsg(b"\x00garbage", key=b"p", offset=41)
    no_imps = FakeMsg(m.encode_request("n", b'{"id":"x"}', [], 1), key=b"n", offset=42)
    recs = _run(FakeProfiles({"u1": KNOWN}), poison, good, no_imps)
    dlq = [r for r in recs if r.topic == "bid_requests.dlq"]
    ok = [r for r in recs if r.topic == "bid_responses"]
    assert len(dlq) == 2
    assert [r.key for r in ok] == ["g"]
    h = dict(dlq[0].headers)
    assert dlq[0].value == b"\x00garbage"
    assert h[m.H_SOURCE_OFFSET] == b"41"
    assert h[m.H_SOURCE_PARTITION] == b"2"
    assert h[m.H_SERVICE] == b"bidder"
    assert h[m.H_REASON].startswith(b"unparseable bid request")


def test_request_currency_and_floor_flow_into_imps():
    imps = [{"id": "1", "banner": {}, "bidfloor": 5.0, "bidfloorcur": "GBP"},
            {"id": "2", "banner": {}}]
    (rec,) = _run(FakeProfiles({"u1": KNOWN}), _msg("r5", _req("u1", imps, cur=["GBP"])))
    out = orjson.loads(rec.value)
    assert out["imps"][0]["bid"] is None
    assert out["imps"][0]["nobid_reason"] == "below_floor"
    assert out["imps"][1]["bid"]["cur"] == "GBP"
    assert out["imps"][1]["bid"]["price"] == 0.9449
