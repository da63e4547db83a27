"""Unit tests for the OpenRTB 2.5/2.6 BidRequest validator of the ingest gateway.

Three layers, so that a regression is caught whichever way it sneaks in:

* every real-world example in ``shared/openrtb-examples/valid`` must validate cleanly (the
  gateway must never 400 a request the spec accepts);
* every fixture in ``tests/fixtures/invalid`` (a real example with exactly one rule broken) must
  be rejected with exactly one violation, at the path stored in its ``__expect__`` key;
* rule-by-rule accept/reject mutations of a minimal request, plus the contract edge cases
  (non-object bodies, booleans posing as numbers, unknown fields and ``ext`` passthrough, and
  "never raises" on arbitrarily mangled input).
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingest_services.contracts import openrtb
from ingest_services.contracts.openrtb import Violation
from ingest_services.contracts.openrtb import violations as validate_bid_request

_HERE = Path(__file__).resolve()
INVALID_DIR = _HERE.parents[1] / "fixtures" / "invalid"


def _examples_dir() -> Path:
    """The shared valid examples: ``$HELIOS_OPENRTB_EXAMPLES`` if set, else ``../shared/...``.

    The env var may point either at the ``valid`` directory itself or at its parent.
    """
    env = os.environ.get("HELIOS_OPENRTB_EXAMPLES")
    if env:
        base = Path(env)
        return base / "valid" if (base / "valid").is_dir() else base
    return _HERE.parents[3] / "shared" / "openrtb-examples" / "valid"


VALID_DIR = _examples_dir()
VALID_FILES = sorted(VALID_DIR.glob("*.json")) if VALID_DIR.is_dir() else []
INVALID_FILES = sorted(INVALID_DIR.glob("*.json"))
WARNING_FILES = sorted((INVALID_DIR.parent / "warnings").glob("*.json"))


def _load(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def _paths(violations: list[Violation]) -> list[str]:
    return [v.path for v in violations]


# --- Shared examples and fixtures ----------------------------------------------------------------


def test_valid_examples_directory_present() -> None:
    """Fail loudly (never skip) when the shared examples are missing."""
    assert VALID_DIR.is_dir(), f"OpenRTB examples directory not found: {VALID_DIR}"
    assert VALID_FILES, f"no *.json example in {VALID_DIR}"


@pytest.mark.parametrize(
    "path",
    VALID_FILES or [pytest.param(VALID_DIR, id="examples-directory-missing")],
    ids=lambda p: p.stem,
)
def test_shared_valid_example_passes(path: Path) -> None:
    assert path.is_file(), f"OpenRTB examples directory missing or empty: {VALID_DIR}"
    violations = validate_bid_request(_load(path))
    assert violations == [], [v.to_dict() for v in violations]


def test_invalid_fixtures_present() -> None:
    assert len(INVALID_FILES) >= 25, f"expected >= 25 invalid fixtures in {INVALID_DIR}"


@pytest.mark.parametrize("path", INVALID_FILES, ids=lambda p: p.stem)
def test_invalid_fixture_rejected_at_expected_path(path: Path) -> None:
    doc = _load(path)
    expect = doc.pop("__expect__")
    violations = validate_bid_request(doc)
    assert _paths(violations) == [expect["field"]], [v.to_dict() for v in violations]
    # The validator ignores unknown top-level keys, so keeping __expect__ changes nothing.
    doc["__expect__"] = expect
    assert validate_bid_request(doc) == violations


@pytest.mark.parametrize("path", WARNING_FILES, ids=lambda p: p.stem)
def test_out_of_range_optional_field_is_a_warning_not_a_rejection(path: Path) -> None:
    doc = _load(path)
    expect = doc.pop("__expect__")
    raw = orjson.dumps(doc)
    req, violations = openrtb.check(raw)
    assert violations == [] and req is not None
    assert [w.path for w in req.out_of_range()] == [expect["field"]]


def test_warning_fixtures_present() -> None:
    assert len(WARNING_FILES) >= 2


# --- Rule-by-rule mutations of a minimal valid request ------------------------------------------

_DEL = object()  # mutation value meaning "remove this key"


def _minimal() -> dict[str, Any]:
    return {"id": "req-1", "imp": [{"id": "1", "banner": {"w": 300, "h": 250}}]}


def _mutate(doc: Any, changes: dict[str, Any]) -> Any:
    """Apply ``{"imp.0.banner.w": -1, ...}`` changes (creating missing objects) to a copy."""
    doc = copy.deepcopy(doc)
    for dotted, value in changes.items():
        *parents, last = (int(p) if p.isdigit() else p for p in dotted.split("."))
        cur = doc
        for p in parents:
            if isinstance(cur, dict) and p not in cur:
                cur[p] = {}
            cur = cur[p]
        if value is _DEL:
            del cur[last]
        else:
            cur[last] = copy.deepcopy(value)
    return doc


def _id(changes: dict[str, Any]) -> str:
    return ",".join(f"{k}={'DEL' if v is _DEL else v!r}"[:60] for k, v in changes.items())


_SCHAIN = {"complete": 1, "ver": "1.0", "nodes": [{"asi": "exch.com", "sid": "pub-1", "hp": 1}]}
_EIDS = [{"source": "adserver.org", "uids": [{"id": "6bca7f6b-a98a", "atype": 1}]}]
_TCF = "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"
_VIDEO = {"mimes": ["video/mp4"], "minduration": 5, "maxduration": 30, "w": 640, "h": 480}
_AUDIO = {"mimes": ["audio/mp4"], "minduration": 5, "maxduration": 30}
_NATIVE = {"request": '{"native":{"ver":"1.2","assets":[]}}', "ver": "1.2"}

ACCEPT: list[dict[str, Any]] = [
    # auction type and request-level scalars
    {"at": 1},
    {"at": 2},
    {"at": 500},
    {"at": 65535},
    {"tmax": 0},
    {"tmax": 120},
    {"test": 0},
    {"test": 1},
    {"allimps": 0},
    {"allimps": 1},
    {"cur": ["USD", "EUR"]},
    {"cur": []},
    {"bcat": []},
    {"bcat": ["IAB25", "IAB7-39"]},
    {"badv": ["apple.com"]},
    {"bapp": ["com.foo.bar"]},
    {"wseat": ["771"], "bseat": ["800"]},
    {"wlang": ["en", "fr"]},
    # imp scalars
    {"imp.0.bidfloor": 0},
    {"imp.0.bidfloor": 2},  # an int is a valid float
    {"imp.0.bidfloor": 0.03},
    {"imp.0.bidfloorcur": "EUR"},
    {"imp.0.instl": 1, "imp.0.secure": 0, "imp.0.clickbrowser": 1},
    {"imp.0.exp": 0},
    {"imp.0.exp": 360},
    {"imp.0.iframebuster": ["vendor1.com"]},
    {"imp.0.iframebuster": []},
    # media objects
    {"imp.0.banner": {}},
    {"imp.0.banner": {"w": 0, "h": 0, "wmax": 728, "hmax": 90, "wmin": 1, "hmin": 1}},
    {"imp.0.banner.format": [{"w": 300, "h": 250}, {"wratio": 16, "hratio": 9, "wmin": 50}]},
    {"imp.0.banner.mimes": ["image/jpg", "text/html"]},
    {"imp.0.banner": _DEL, "imp.0.video": _VIDEO},
    {"imp.0.banner": _DEL, "imp.0.video": {"mimes": ["video/mp4"]}},
    {"imp.0.banner": _DEL, "imp.0.video": {**_VIDEO, "minduration": 30}},  # min == max
    {"imp.0.banner": _DEL, "imp.0.video": {**_VIDEO, "startdelay": -2, "rqddurs": [15]}},
    {"imp.0.banner": _DEL, "imp.0.audio": _AUDIO},
    {"imp.0.banner": _DEL, "imp.0.native": _NATIVE},
    {"imp.0.video": _VIDEO, "imp.0.audio": _AUDIO, "imp.0.native": _NATIVE},
    # private marketplace (deal.at 3 is legal for deals, unlike BidRequest.at)
    {"imp.0.pmp": {"private_auction": 1, "deals": [{"id": "d1", "bidfloor": 1.5, "at": 3}]}},
    {"imp.0.pmp": {"private_auction": 0, "deals": [{"id": "d1", "bidfloor": 0}]}},
    {"imp.0.pmp": {"deals": []}},
    {"imp.0.pmp": {}},
    # distribution channel: one of site / app / dooh (null means absent)
    {"site": {"id": "s", "cat": ["IAB1"]}},
    {"app": {"id": "a", "cat": []}},
    {"dooh": {"id": "d", "venuetypeid": 30101}},
    {"site": None, "app": {"id": "a"}},
    # device / user geo
    {"device": {"w": 0, "h": 0, "geo": {"lat": -90, "lon": 180}}},
    {"device.geo": {"lat": 51.5, "long": -0.12}},  # unknown "long" passes
    {"user.geo": {"lat": 90.0, "lon": -180.0}},
    # privacy: OpenRTB 2.6 placements
    {"regs": {"gdpr": 1, "coppa": 0, "us_privacy": "1YNN"}, "user.consent": _TCF},
    {"regs": {"gdpr": 0}},
    {"user.eids": _EIDS},
    {"user.eids": [{"source": "a.com", "uids": []}]},
    {"source.schain": _SCHAIN},
    {"source.schain": {"complete": 0, "nodes": []}},
    # privacy: OpenRTB 2.5 placements (ext)
    {"regs.ext": {"gdpr": 1, "us_privacy": "1---"}, "user.ext": {"consent": _TCF}},
    {"regs.ext.gdpr": 0},
    {"user.ext.eids": _EIDS},
    {"source.ext.schain": _SCHAIN},
    # both placements at once (transition-period senders)
    {
        "regs": {"gdpr": 1, "ext": {"gdpr": 1}},
        "source": {"schain": _SCHAIN, "ext": {"schain": _SCHAIN}},
    },
    # null is "absent" for optional fields
    {"tmax": None, "at": None, "cur": None, "site": None, "imp.0.bidfloor": None},
    # unknown fields and ext objects pass untouched
    {"ext": {"prebid": {"debug": True, "anything": [None, -1, "x"]}}},
    {"imp.0.ext": {"gpid": "/1/home", "bidfloor": -5, "secure": "yes"}},
    {"imp.0.banner.ext": {"w": -1}, "imp.0.futurefield": {"nested": [1, 2]}},
    {"regs.ext": {"gdpr": 1, "dsa": {"required": 3}}, "user.ext": {"foo": -1}},
    {"source.ext": {"omidpn": "x"}, "device.ext": {"atts": 3}},
    {"x-unknown": 1, "imp.0.pmp.deals": [{"id": "d", "ext": {"priority": -1}, "wseats": []}]},
    {"ext": "not-an-object"},  # ext content is never inspected
    {"__expect__": {"field": "id"}},
]

REJECT: list[tuple[dict[str, Any], str]] = [
    # id
    ({"id": _DEL}, "id"),
    ({"id": None}, "id"),
    ({"id": ""}, "id"),
    ({"id": 12345}, "id"),
    # imp array
    ({"imp": _DEL}, "imp"),
    ({"imp": []}, "imp"),
    ({"imp": {"id": "1", "banner": {}}}, "imp"),
    ({"imp": "1"}, "imp"),
    ({"imp": [1]}, "imp[0]"),
    ({"imp.0.id": _DEL}, "imp[0].id"),
    ({"imp.0.id": ""}, "imp[0].id"),
    ({"imp.0.id": 1}, "imp[0].id"),
    # media presence and types
    ({"imp.0.banner": _DEL}, "imp[0]"),
    ({"imp.0.banner": None}, "imp[0]"),
    ({"imp.0.banner": "300x250"}, "imp[0].banner"),
    ({"imp.0.video": []}, "imp[0].video"),
    ({"imp.0.audio": 1}, "imp[0].audio"),
    ({"imp.0.native": "req"}, "imp[0].native"),
    # video / audio
    ({"imp.0.video": {**_VIDEO, "mimes": _DEL}}, "imp[0].video.mimes"),
    ({"imp.0.video": {**_VIDEO, "mimes": []}}, "imp[0].video.mimes"),
    ({"imp.0.video": {**_VIDEO, "mimes": "video/mp4"}}, "imp[0].video.mimes"),
    ({"imp.0.video": {**_VIDEO, "mimes": ["video/mp4", 1]}}, "imp[0].video.mimes[1]"),
    ({"imp.0.video": {**_VIDEO, "minduration": -1}}, "imp[0].video.minduration"),
    ({"imp.0.video": {**_VIDEO, "maxduration": 30.5}}, "imp[0].video.maxduration"),
    ({"imp.0.video": {**_VIDEO, "minduration": 31}}, "imp[0].video.minduration"),
    ({"imp.0.video": {**_VIDEO, "w": -640}}, "imp[0].video.w"),
    ({"imp.0.video": {**_VIDEO, "h": "480"}}, "imp[0].video.h"),
    ({"imp.0.audio": {**_AUDIO, "mimes": _DEL}}, "imp[0].audio.mimes"),
    ({"imp.0.audio": {**_AUDIO, "mimes": [None]}}, "imp[0].audio.mimes[0]"),
    ({"imp.0.audio": {**_AUDIO, "maxduration": 1}}, "imp[0].audio.minduration"),
    ({"imp.0.audio": {**_AUDIO, "maxduration": -30}}, "imp[0].audio.maxduration"),
    # native
    ({"imp.0.native": {"ver": "1.2"}}, "imp[0].native.request"),
    ({"imp.0.native": {"request": ""}}, "imp[0].native.request"),
    ({"imp.0.native": {"request": {"native": {}}}}, "imp[0].native.request"),
    # banner
    ({"imp.0.banner.w": -1}, "imp[0].banner.w"),
    ({"imp.0.banner.h": 250.5}, "imp[0].banner.h"),
    ({"imp.0.banner.wmax": "728"}, "imp[0].banner.wmax"),
    ({"imp.0.banner.hmax": -90}, "imp[0].banner.hmax"),
    ({"imp.0.banner.wmin": -1}, "imp[0].banner.wmin"),
    ({"imp.0.banner.hmin": [1]}, "imp[0].banner.hmin"),
    ({"imp.0.banner.format": {"w": 300, "h": 250}}, "imp[0].banner.format"),
    ({"imp.0.banner.format": [{"w": 300, "h": 250}, 7]}, "imp[0].banner.format[1]"),
    ({"imp.0.banner.format": [{"w": -300, "h": 250}]}, "imp[0].banner.format[0].w"),
    ({"imp.0.banner.format": [{"w": 300, "h": -1}]}, "imp[0].banner.format[0].h"),
    ({"imp.0.banner.mimes": "image/png"}, "imp[0].banner.mimes"),
    ({"imp.0.banner.mimes": ["image/png", {}]}, "imp[0].banner.mimes[1]"),
    # imp scalars
    ({"imp.0.bidfloor": -0.01}, "imp[0].bidfloor"),
    ({"imp.0.bidfloor": "0.5"}, "imp[0].bidfloor"),
    ({"imp.0.bidfloorcur": "usd"}, "imp[0].bidfloorcur"),
    ({"imp.0.bidfloorcur": "US"}, "imp[0].bidfloorcur"),
    ({"imp.0.bidfloorcur": "USDT"}, "imp[0].bidfloorcur"),
    ({"imp.0.bidfloorcur": "U1D"}, "imp[0].bidfloorcur"),
    ({"imp.0.bidfloorcur": "ÀÉÎ"}, "imp[0].bidfloorcur"),
    ({"imp.0.bidfloorcur": 840}, "imp[0].bidfloorcur"),
    ({"imp.0.exp": -1}, "imp[0].exp"),
    ({"imp.0.exp": 3.5}, "imp[0].exp"),
    ({"imp.0.instl": 2}, "imp[0].instl"),
    ({"imp.0.secure": -1}, "imp[0].secure"),
    ({"imp.0.secure": "1"}, "imp[0].secure"),
    ({"imp.0.clickbrowser": 2}, "imp[0].clickbrowser"),
    ({"imp.0.iframebuster": "vendor1.com"}, "imp[0].iframebuster"),
    ({"imp.0.iframebuster": [1]}, "imp[0].iframebuster[0]"),
    # pmp
    ({"imp.0.pmp": "deal"}, "imp[0].pmp"),
    ({"imp.0.pmp.private_auction": 2}, "imp[0].pmp.private_auction"),
    ({"imp.0.pmp.deals": {"id": "d1"}}, "imp[0].pmp.deals"),
    ({"imp.0.pmp.deals": ["d1"]}, "imp[0].pmp.deals[0]"),
    ({"imp.0.pmp.deals": [{"bidfloor": 1}]}, "imp[0].pmp.deals[0].id"),
    ({"imp.0.pmp.deals": [{"id": "a"}, {"id": ""}]}, "imp[0].pmp.deals[1].id"),
    ({"imp.0.pmp.deals": [{"id": 7}]}, "imp[0].pmp.deals[0].id"),
    ({"imp.0.pmp.deals": [{"id": "d1", "bidfloor": -1}]}, "imp[0].pmp.deals[0].bidfloor"),
    # request-level scalars
    ({"tmax": -1}, "tmax"),
    ({"tmax": 120.5}, "tmax"),
    ({"tmax": "120"}, "tmax"),
    ({"test": 2}, "test"),
    ({"allimps": -1}, "allimps"),
    ({"at": 0}, "at"),
    ({"at": 3}, "at"),
    ({"at": 499}, "at"),
    ({"at": -1}, "at"),
    ({"at": 1.0}, "at"),
    ({"at": "1"}, "at"),
    ({"cur": "USD"}, "cur"),
    ({"cur": ["USD", "usd"]}, "cur[1]"),
    ({"cur": [840]}, "cur[0]"),
    ({"bcat": "IAB1"}, "bcat"),
    ({"bcat": ["IAB1", 2]}, "bcat[1]"),
    ({"badv": [None]}, "badv[0]"),
    ({"bapp": {}}, "bapp"),
    ({"wseat": [771]}, "wseat[0]"),
    ({"bseat": "800"}, "bseat"),
    ({"wlang": [["en"]]}, "wlang[0]"),
    # distribution channel
    ({"site": {}, "app": {}}, "app"),
    ({"site": {}, "dooh": {}}, "dooh"),
    ({"app": {}, "dooh": {}}, "dooh"),
    ({"site": "example.com"}, "site"),
    ({"app": []}, "app"),
    ({"dooh": 1}, "dooh"),
    ({"site.cat": "IAB1"}, "site.cat"),
    ({"app.cat": [1]}, "app.cat[0]"),
    # device, user, geo
    ({"device": "iPhone"}, "device"),
    ({"device.w": -1}, "device.w"),
    ({"device.h": 1920.5}, "device.h"),
    ({"device.geo": "51.5,-0.1"}, "device.geo"),
    ({"device.geo.lat": "51.5"}, "device.geo.lat"),
    ({"user": []}, "user"),
    ({"user.geo.lon": "0"}, "user.geo.lon"),
    # privacy, 2.6 placements
    ({"regs": "gdpr"}, "regs"),
    ({"regs.coppa": 2}, "regs.coppa"),
    ({"regs.gdpr": 2}, "regs.gdpr"),
    ({"regs.gdpr": "1"}, "regs.gdpr"),
    ({"regs.us_privacy": 1}, "regs.us_privacy"),
    ({"user.consent": 1}, "user.consent"),
    ({"user.eids": {"source": "a"}}, "user.eids"),
    ({"user.eids": ["a"]}, "user.eids[0]"),
    ({"user.eids": [{"uids": [{"id": "x"}]}]}, "user.eids[0].source"),
    ({"user.eids": [{"source": 1, "uids": []}]}, "user.eids[0].source"),
    ({"user.eids": [{"source": "a"}]}, "user.eids[0].uids"),
    ({"user.eids": [{"source": "a", "uids": {"id": "x"}}]}, "user.eids[0].uids"),
    ({"user.eids": [{"source": "a", "uids": ["x"]}]}, "user.eids[0].uids[0]"),
    (
        {"user.eids": [{"source": "a", "uids": [{"id": "x"}, {"atype": 1}]}]},
        "user.eids[0].uids[1].id",
    ),
    ({"source": "exchange"}, "source"),
    ({"source.schain": [_SCHAIN]}, "source.schain"),
    ({"source.schain": {**_SCHAIN, "complete": _DEL}}, "source.schain.complete"),
    ({"source.schain": {**_SCHAIN, "complete": 2}}, "source.schain.complete"),
    ({"source.schain": {**_SCHAIN, "nodes": _DEL}}, "source.schain.nodes"),
    ({"source.schain": {**_SCHAIN, "nodes": [1]}}, "source.schain.nodes[0]"),
    ({"source.schain": {**_SCHAIN, "nodes": [{"sid": "1"}]}}, "source.schain.nodes[0].asi"),
    (
        {"source.schain": {**_SCHAIN, "nodes": [{"asi": "a", "sid": 1}]}},
        "source.schain.nodes[0].sid",
    ),
    # privacy, 2.5 placements
    ({"regs.ext.gdpr": 2}, "regs.ext.gdpr"),
    ({"regs.ext.gdpr": "0"}, "regs.ext.gdpr"),
    ({"regs.ext.us_privacy": 1}, "regs.ext.us_privacy"),
    ({"user.ext.consent": {"tcf": "x"}}, "user.ext.consent"),
    ({"user.ext.eids": "adserver.org"}, "user.ext.eids"),
    ({"user.ext.eids": [{"source": "a", "uids": [{"id": None}]}]}, "user.ext.eids[0].uids[0].id"),
    ({"source.ext.schain": "1.0,1!exch.com,1,1"}, "source.ext.schain"),
    ({"source.ext.schain": {**_SCHAIN, "complete": -1}}, "source.ext.schain.complete"),
    ({"source.ext.schain": {**_SCHAIN, "nodes": [{"asi": "a"}]}}, "source.ext.schain.nodes[0].sid"),
]


@pytest.mark.parametrize("changes", ACCEPT, ids=_id)
def test_rule_accepts(changes: dict[str, Any]) -> None:
    violations = validate_bid_request(_mutate(_minimal(), changes))
    assert violations == [], [v.to_dict() for v in violations]


@pytest.mark.parametrize(("changes", "field"), REJECT, ids=[_id(c) for c, _ in REJECT])
def test_rule_rejects(changes: dict[str, Any], field: str) -> None:
    violations = validate_bid_request(_mutate(_minimal(), changes))
    assert _paths(violations) == [field], [v.to_dict() for v in violations]
    assert all(v.rule for v in violations)


# --- Contract edge cases -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", [[], [{"id": "1"}], "req", "", 0, 1.5, True, False, None, b"{}", object()], ids=repr
)
def test_non_object_body_rejected(body: object) -> None:
    assert validate_bid_request(body) == [Violation("", "request body must be a JSON object")]


@pytest.mark.parametrize(
    "field",
    [
        "tmax",
        "test",
        "allimps",
        "at",
        "imp.0.bidfloor",
        "imp.0.exp",
        "imp.0.instl",
        "imp.0.secure",
        "imp.0.clickbrowser",
        "imp.0.banner.w",
        "imp.0.banner.h",
        "device.w",
        "device.geo.lat",
        "device.geo.lon",
        "regs.coppa",
        "regs.gdpr",
        "regs.ext.gdpr",
    ],
)
@pytest.mark.parametrize("flag", [True, False])
def test_booleans_rejected_as_numbers(field: str, flag: bool) -> None:
    violations = validate_bid_request(_mutate(_minimal(), {field: flag}))
    expected = field.replace(".0.", "[0].")
    assert _paths(violations) == [expected]


def test_duplicated_imp_ids_reported_on_the_duplicate() -> None:
    req = _minimal()
    banner = {"w": 300, "h": 250}
    req["imp"] = [{"id": i, "banner": banner} for i in ("a", "b", "a", "c", "b")]
    violations = validate_bid_request(req)
    assert _paths(violations) == ["imp[2].id", "imp[4].id"]
    assert "imp[0].id" in violations[0].rule
    assert "imp[1].id" in violations[1].rule


def test_distinct_imp_ids_accepted() -> None:
    req = _minimal()
    req["imp"] = [{"id": str(i), "banner": {"w": 300, "h": 250}} for i in range(20)]
    assert validate_bid_request(req) == []


WARN: list[tuple[dict[str, Any], str]] = [
    ({"device.geo.lat": 90.0001}, "device.geo.lat"),
    ({"device.geo.lat": -91}, "device.geo.lat"),
    ({"device.geo.lon": 180.5}, "device.geo.lon"),
    ({"device.geo.lon": -181}, "device.geo.lon"),
    ({"user.geo.lat": -90.5}, "user.geo.lat"),
    ({"user.geo.lon": 1e9}, "user.geo.lon"),
]


@pytest.mark.parametrize(("changes", "field"), WARN, ids=[_id(c) for c, _ in WARN])
def test_out_of_range_geo_is_accepted_with_a_warning(changes: dict[str, Any], field: str
                                                     ) -> None:
    doc = _mutate(_minimal(), changes)
    assert validate_bid_request(doc) == []
    req, _ = openrtb.check(orjson.dumps(doc))
    assert req is not None
    warnings = req.out_of_range()
    assert [w.path for w in warnings] == [field]
    assert "between" in warnings[0].rule
    dropped = openrtb.drop_fields(doc, [field])
    *parent, last = field.split(".")
    assert last not in dropped[parent[0]][parent[1]]


def test_in_range_geo_gives_no_warning() -> None:
    req, _ = openrtb.check(orjson.dumps(
        _mutate(_minimal(), {"device.geo": {"lat": -90, "lon": 180}})))
    assert req is not None and req.out_of_range() == []


def test_hot_path_and_error_path_agree_on_every_fixture() -> None:
    """decode() (one pass, first error) rejects exactly what violations() (all) rejects."""
    for path in VALID_FILES + INVALID_FILES + WARNING_FILES:
        doc = _load(path)
        doc.pop("__expect__", None)
        req, found = openrtb.check(orjson.dumps(doc))
        assert (req is None) == bool(validate_bid_request(doc)) == bool(found), path.name


def test_at_3_rejected_and_at_500_accepted() -> None:
    assert _paths(validate_bid_request({**_minimal(), "at": 3})) == ["at"]
    assert validate_bid_request({**_minimal(), "at": 500}) == []


def test_at_most_one_placement_reports_each_extra_one() -> None:
    req = {**_minimal(), "site": {}, "app": {}, "dooh": {}}
    violations = validate_bid_request(req)
    assert _paths(violations) == ["app", "dooh"]
    assert all("at most one of site, app, dooh" in v.rule for v in violations)


def test_every_violation_is_reported() -> None:
    req = {
        "id": "",
        "imp": [
            {"id": "1", "video": {"mimes": []}, "bidfloor": -1},
            {"id": "1", "banner": {"w": -1}, "secure": 2},
            "oops",
        ],
        "at": 3,
        "regs": {"gdpr": 2, "ext": {"gdpr": 2}},
    }
    # fields in declaration order, then the cross-field rules (at, unique imp ids)
    assert _paths(validate_bid_request(req)) == [
        "id",
        "imp[0].video.mimes",
        "imp[0].bidfloor",
        "imp[1].banner.w",
        "imp[1].secure",
        "imp[2]",
        "regs.gdpr",
        "regs.ext.gdpr",
        "at",
        "imp[1].id",
    ]


@pytest.mark.parametrize("path", VALID_FILES, ids=lambda p: p.stem)
@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(
            {
                "regs": {"gdpr": 1, "us_privacy": "1YNN"},
                "user.consent": _TCF,
                "user.eids": _EIDS,
                "source.schain": _SCHAIN,
            },
            id="ortb26-placements",
        ),
        pytest.param(
            {
                "regs": {"ext": {"gdpr": 1, "us_privacy": "1YNN"}},
                "user.ext": {"consent": _TCF, "eids": _EIDS},
                "source.ext": {"schain": _SCHAIN},
            },
            id="ortb25-placements",
        ),
        pytest.param(
            {"ext": {"x": [1]}, "imp.0.ext": {"y": None}, "imp.0.unknown": -1, "zzz": {}},
            id="unknown-and-ext",
        ),
    ],
)
def test_real_examples_accept_privacy_placements_and_unknowns(
    path: Path, extra: dict[str, Any]
) -> None:
    req = _mutate(_load(path), extra)
    assert validate_bid_request(req) == []


def test_validator_does_not_mutate_its_input() -> None:
    for path in VALID_FILES + INVALID_FILES:
        req = _load(path)
        before = copy.deepcopy(req)
        validate_bid_request(req)
        assert req == before


def test_violation_shape() -> None:
    v = Violation("imp[0].video.mimes", "must be a non-empty array of strings")
    assert v.to_dict() == {"field": "imp[0].video.mimes", "reason": v.rule}
    assert orjson.loads(orjson.dumps(v.to_dict())) == v.to_dict()
    assert not hasattr(v, "__dict__")  # slots
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.path = "x"  # type: ignore[misc]
    assert v == Violation("imp[0].video.mimes", "must be a non-empty array of strings")


_WEIRD: list[Any] = [None, True, -1, 1.5, float("nan"), "", "x", [], [None], {}, {"id": 1}]


def _walk(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield (*prefix, k)
            yield from _walk(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield (*prefix, i)
            yield from _walk(v, (*prefix, i))


@pytest.mark.parametrize("path", VALID_FILES, ids=lambda p: p.stem)
def test_never_raises_on_mangled_input(path: Path) -> None:
    """Replace every node of a real request with odd values: always a list, never an exception."""
    original = _load(path)
    for where in _walk(original):
        for weird in _WEIRD:
            req = copy.deepcopy(original)
            cur = req
            for step in where[:-1]:
                cur = cur[step]
            cur[where[-1]] = weird
            result = validate_bid_request(req)
            assert isinstance(result, list)
            assert all(isinstance(v, Violation) for v in result)


@pytest.mark.parametrize("raw", [b'{"id":"\xe3","imp":[{"id":"1","banner":{}}]}',
                                 b'{"id":"r","imp":[{"id":"\xff\xfe","banner":{}}]}'])
def test_a_string_that_is_not_utf8_is_one_clear_violation_not_an_exception(raw):
    """Found by tests/integration/test_fuzz.py: msgspec raised UnicodeDecodeError (a 500)."""
    req, found = openrtb.check(raw)
    assert req is None
    assert [v.path for v in found] == [""] and "UTF-8" in found[0].rule
