"""Typed partial views (contracts/partial.py) and the bidder's: a view decodes exactly what
the full contract decodes for the fields it keeps, on every shared OpenRTB example and on
synthetic traffic, and the bidder answers the same with the view as with the full decode."""

import random

import msgspec
import orjson
import pytest

from helios_pipeline.synth import make_request
from ingest_services.bidder import handler as bidder
from ingest_services.contracts import messages as m
from ingest_services.contracts.messages import RequestEnvelope
from ingest_services.contracts.openrtb import BidRequest, Imp
from ingest_services.contracts.partial import KEEP, PRESENT, view
from tests.unit.test_bidder_handler import KNOWN, FakeMsg, FakeProfiles
from tests.unit.test_validation import VALID_FILES


def _bodies() -> list[bytes]:
    rng = random.Random(11)
    synth = [orjson.dumps(make_request(rng, f"s{i}", 100)) for i in range(200)]
    return [p.read_bytes() for p in VALID_FILES] + synth


def _envelope(raw: bytes, rid: str = "r") -> bytes:
    ids = [i["id"] for i in orjson.loads(raw)["imp"]]
    return m.encode_request(rid, raw, ids, 1_700_000_000_000)


def _same(part, full, path="$"):
    """Every field of the view ``part`` equals the full decode's; a struct kept empty
    (PRESENT) must be present exactly when the full one is."""
    if isinstance(part, msgspec.Struct):
        assert isinstance(full, msgspec.Struct), path
        for f in part.__struct_fields__:
            _same(getattr(part, f), getattr(full, f), f"{path}.{f}")
    elif isinstance(part, list):
        assert isinstance(full, list) and len(part) == len(full), path
        for i, (a, b) in enumerate(zip(part, full, strict=True)):
            _same(a, b, f"{path}[{i}]")
    else:
        assert part == full and type(part) is type(full), path


def test_the_shared_examples_are_there():
    assert len(VALID_FILES) >= 10  # the comparison below must not pass on nothing


@pytest.mark.parametrize("raw", _bodies()[:len(VALID_FILES) + 5])
def test_bidder_view_decodes_what_the_contract_decodes(raw):
    env = _envelope(raw)
    part = m.decode(env, bidder.BidderEnvelope)
    full = m.decode(env, RequestEnvelope)
    _same(part, full)
    # the contract's properties came along and agree
    assert part.request.auction_type == full.request.auction_type
    assert [i.media for i in part.request.imp] == [i.media for i in full.request.imp]
    assert bidder.user_of(part.request) == bidder.user_of(full.request)


def test_bidder_answers_the_same_with_the_view_as_with_the_full_contract(monkeypatch):
    msgs = [FakeMsg(_envelope(raw, f"r{i}"), key=f"r{i}".encode(), offset=i)
            for i, raw in enumerate(_bodies())]
    # a known user on some requests, so enriched bids are compared too
    profiles = FakeProfiles({"u00000001": KNOWN, "u00000002": KNOWN})

    def run():
        return [msgspec.json.decode(r.value) for r in
                bidder.BidderHandler(profiles, "bid_responses")(msgs)]

    with_view = run()
    monkeypatch.setattr(bidder, "BidderEnvelope", RequestEnvelope)
    with_full = run()
    assert len(with_view) == len(msgs)
    assert all(r.get("rid") for r in with_view)  # answers, not dead letters
    for a, b in zip(with_view, with_full, strict=True):
        a.pop("bid_at")
        b.pop("bid_at")
        assert a == b


def test_a_view_keeps_the_contracts_types_and_constraints():
    v = view(BidRequest, {"id": KEEP, "imp": {"id": KEEP, "bidfloor": KEEP}})
    dec = msgspec.json.Decoder(v)
    ok = dec.decode(b'{"id":"x","imp":[{"id":"1","bidfloor":0.5,"banner":{}}],"site":{}}')
    assert ok.imp[0].bidfloor == 0.5
    with pytest.raises(msgspec.ValidationError, match="imp"):
        dec.decode(b'{"id":"x","imp":[]}')  # min_length=1, as in the contract
    with pytest.raises(msgspec.ValidationError, match=r"bidfloor"):
        dec.decode(b'{"id":"x","imp":[{"id":"1","bidfloor":-1}]}')  # ge=0
    with pytest.raises(msgspec.ValidationError, match="id"):
        dec.decode(b'{"imp":[{"id":"1"}]}')  # required


def test_present_keeps_only_whether_the_object_is_there():
    v = view(Imp, {"id": KEEP, "video": PRESENT})
    got = msgspec.json.decode(b'{"id":"1","video":{"mimes":["a"],"w":640}}', type=v)
    assert got.video is not None and got.video.__struct_fields__ == ()
    assert msgspec.json.decode(b'{"id":"1"}', type=v).video is None


def test_a_view_names_only_fields_of_its_contract():
    with pytest.raises(TypeError, match="no field"):
        view(BidRequest, {"id": KEEP, "not_a_field": KEEP})
