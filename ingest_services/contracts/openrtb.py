"""The OpenRTB 2.5 / 2.6 BidRequest as Helios accepts it: one typed definition, with its rules.

The gateway validates with it (:func:`check`), its OpenAPI request schema is generated from
it (:func:`json_schema`), the request envelope on ``bid_requests`` carries it, and the
bidder decodes it. What the types cannot say (at least one media object, unique imp ids,
at most one of site/app/dooh, ``minduration <= maxduration``, the auction type) is a
``rules`` function on the struct it concerns, run by ``__post_init__``.

Semantics (docs/validation.md):

* **Rejected (400, naming the field):** what makes a request unusable or what the
  specification marks as required or enumerated: missing ``id``, no ``imp``, duplicate imp
  ids, no media object, empty ``mimes``, site+app together, ``gdpr`` outside {0, 1},
  negative sizes/floors/tmax, wrong JSON types (a boolean is never a number; a float is not
  an integer; ``null`` means absent).
* **Accepted with a warning:** an optional field whose value is out of its range
  (``device.geo.lat`` beyond ±90 — real exchange traffic carries such values). The field is
  dropped before publishing, counted, and listed in the 202 body as ``warnings``.
* **Passed through untouched:** unknown fields and ``ext`` objects, except the OpenRTB 2.5
  ``ext`` placements that 2.6 promoted (``regs.ext.gdpr``, ``regs.ext.us_privacy``,
  ``user.ext.consent``, ``user.ext.eids``, ``source.ext.schain``), held to the same rules in
  both places.

Why msgspec: a ``Struct`` decodes and validates the JSON bytes in one pass, in C, ignoring
unknown fields cheaply; the benchmark in ``bench/`` reports its cost per request next to
plain parsing. On the (rare) error path, :func:`violations` walks the same definition to
report every violation, not just the first.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

import msgspec
import orjson
from msgspec import Meta, Struct

# --- Field types ------------------------------------------------------------------------------

NonNegInt = Annotated[int, Meta(ge=0, description="non-negative integer")]
NonNegNumber = Annotated[float, Meta(ge=0, description="non-negative number")]
Flag = Annotated[int, Meta(ge=0, le=1, description="0 or 1")]
NonEmptyStr = Annotated[str, Meta(min_length=1)]
Currency = Annotated[str, Meta(pattern="^[A-Z]{3}$", description="ISO-4217 code, uppercase")]
Mimes = Annotated[list[str], Meta(min_length=1, description="non-empty array of MIME types")]
# Out of range is not fatal for these (real traffic carries such values): see Geo.
Latitude = Annotated[float, Meta(description="-90..90; out of range: dropped with a warning")]
Longitude = Annotated[float, Meta(description="-180..180; out of range: dropped with a warning")]

AT_RULE = "must be 1 (first price), 2 (second price plus) or >= 500 (exchange-specific)"
MEDIA_RULE = "must contain at least one of banner, video, audio, native (objects)"
PLACEMENT_RULE = "at most one of site, app, dooh may be present"
DURATION_RULE = "must not be greater than maxduration"
MEDIA = ("video", "audio", "native", "banner")  # the bidder's precedence
PLACEMENTS = ("site", "app", "dooh")
AUCTION_TYPES = "1, 2 or >= 500"


class _View:
    """A raw JSON object seen the way rules see a decoded struct: ``view.field`` is the
    value or None. Rules are written once, with attribute access, and run on both (on the
    hot path on structs, on the error path on :func:`_view` of the raw value)."""

    __slots__ = ("_d",)

    def __init__(self, d: dict) -> None:
        self._d = d

    def __getattr__(self, key: str) -> Any:
        return _view(self._d.get(key))


def _view(value: Any) -> Any:
    if isinstance(value, dict):
        return _View(value)
    if isinstance(value, list):
        return [_view(v) for v in value]
    return value


class _Checked(Struct, kw_only=True, omit_defaults=True):
    """Base: ``rules`` yields (field, reason) for what types alone cannot express."""

    @staticmethod
    def rules(obj: Any) -> Iterator[tuple[str, str]]:
        return iter(())

    def __post_init__(self) -> None:
        for field, reason in self.rules(self):  # usually yields nothing
            raise ValueError(f"{field}: {reason}")


# --- Media objects ----------------------------------------------------------------------------


class Format(Struct, kw_only=True, omit_defaults=True):
    w: NonNegInt | None = None
    h: NonNegInt | None = None


class Banner(Struct, kw_only=True, omit_defaults=True):
    w: NonNegInt | None = None
    h: NonNegInt | None = None
    wmax: NonNegInt | None = None
    hmax: NonNegInt | None = None
    wmin: NonNegInt | None = None
    hmin: NonNegInt | None = None
    format: list[Format] | None = None
    mimes: list[str] | None = None


class _AudioVideo(_Checked, kw_only=True, omit_defaults=True):
    mimes: Mimes
    minduration: NonNegInt | None = None
    maxduration: NonNegInt | None = None

    @staticmethod
    def rules(obj: Any) -> Iterator[tuple[str, str]]:
        lo, hi = obj.minduration, obj.maxduration
        if type(lo) is int and type(hi) is int and 0 <= hi < lo:
            yield "minduration", DURATION_RULE


class Video(_AudioVideo, kw_only=True, omit_defaults=True):
    w: NonNegInt | None = None
    h: NonNegInt | None = None


class Audio(_AudioVideo, kw_only=True, omit_defaults=True):
    pass


class Native(Struct, kw_only=True, omit_defaults=True):
    request: Annotated[NonEmptyStr, Meta(description="the Native Markup Request, as a string")]
    ver: str | None = None


class Deal(Struct, kw_only=True, omit_defaults=True):
    id: NonEmptyStr
    bidfloor: NonNegNumber | None = None


class Pmp(Struct, kw_only=True, omit_defaults=True):
    private_auction: Flag | None = None
    deals: list[Deal] | None = None


class Imp(_Checked, kw_only=True, omit_defaults=True):
    id: NonEmptyStr
    banner: Banner | None = None
    video: Video | None = None
    audio: Audio | None = None
    native: Native | None = None
    pmp: Pmp | None = None
    bidfloor: NonNegNumber | None = None
    bidfloorcur: Currency | None = None  # absent means USD
    exp: NonNegInt | None = None
    instl: Flag | None = None
    secure: Flag | None = None
    clickbrowser: Flag | None = None
    iframebuster: list[str] | None = None

    @staticmethod
    def rules(obj: Any) -> Iterator[tuple[str, str]]:
        if obj.banner is None and obj.video is None and obj.audio is None and \
                obj.native is None:
            yield "", MEDIA_RULE

    @property
    def media(self) -> str:
        """The media type the bidder prices (video, audio, native, banner precedence)."""
        for m in MEDIA:
            if getattr(self, m) is not None:
                return m
        return "banner"


# --- Context objects --------------------------------------------------------------------------


class Geo(Struct, kw_only=True, omit_defaults=True):
    lat: Latitude | None = None
    lon: Longitude | None = None

    def out_of_range(self) -> Iterator[tuple[str, str]]:
        """Optional fields whose value is out of range: dropped, not fatal."""
        if self.lat is not None and not -90 <= self.lat <= 90:
            yield "lat", "must be a number between -90 and 90"
        if self.lon is not None and not -180 <= self.lon <= 180:
            yield "lon", "must be a number between -180 and 180"


class Site(Struct, kw_only=True, omit_defaults=True):
    cat: list[str] | None = None


class App(Struct, kw_only=True, omit_defaults=True):
    cat: list[str] | None = None


class Dooh(Struct, kw_only=True, omit_defaults=True):
    pass


class Device(Struct, kw_only=True, omit_defaults=True):
    w: NonNegInt | None = None
    h: NonNegInt | None = None
    geo: Geo | None = None


class Uid(Struct, kw_only=True, omit_defaults=True):
    id: str


class Eid(Struct, kw_only=True, omit_defaults=True):
    source: str
    uids: list[Uid]


class UserExt(Struct, kw_only=True, omit_defaults=True):
    """OpenRTB 2.5 placements of what 2.6 made first-class; other ext content passes."""

    consent: str | None = None
    eids: list[Eid] | None = None


class User(Struct, kw_only=True, omit_defaults=True):
    id: str | None = None
    geo: Geo | None = None
    consent: str | None = None
    eids: list[Eid] | None = None
    ext: UserExt | None = None


class RegsExt(Struct, kw_only=True, omit_defaults=True):
    gdpr: Flag | None = None
    us_privacy: str | None = None


class Regs(Struct, kw_only=True, omit_defaults=True):
    coppa: Flag | None = None
    gdpr: Flag | None = None
    us_privacy: str | None = None
    ext: RegsExt | None = None


class SupplyChainNode(Struct, kw_only=True, omit_defaults=True):
    asi: str
    sid: str


class SupplyChain(Struct, kw_only=True, omit_defaults=True):
    complete: Flag
    nodes: list[SupplyChainNode]


class SourceExt(Struct, kw_only=True, omit_defaults=True):
    schain: SupplyChain | None = None


class Source(Struct, kw_only=True, omit_defaults=True):
    schain: SupplyChain | None = None
    ext: SourceExt | None = None


class BidRequest(_Checked, kw_only=True, omit_defaults=True):
    """OpenRTB 2.5/2.6 BidRequest: the fields Helios checks or uses; all others pass."""

    id: NonEmptyStr
    imp: Annotated[list[Imp], Meta(min_length=1)]
    site: Site | None = None
    app: App | None = None
    dooh: Dooh | None = None
    device: Device | None = None
    user: User | None = None
    regs: Regs | None = None
    source: Source | None = None
    at: Annotated[int, Meta(description=AT_RULE, extra_json_schema={
        "anyOf": [{"enum": [1, 2]}, {"minimum": 500}]})] | None = None  # absent means 2
    tmax: NonNegInt | None = None
    test: Flag | None = None
    allimps: Flag | None = None
    cur: list[Currency] | None = None
    bcat: list[str] | None = None
    badv: list[str] | None = None
    bapp: list[str] | None = None
    wseat: list[str] | None = None
    bseat: list[str] | None = None
    wlang: list[str] | None = None

    @staticmethod
    def rules(obj: Any) -> Iterator[tuple[str, str]]:
        at = obj.at
        if type(at) is int and not (at == 1 or at == 2 or at >= 500):
            yield "at", AT_RULE
        imps = obj.imp
        if isinstance(imps, list) and len(imps) > 1:
            seen: dict[str, int] = {}
            for i, imp in enumerate(imps):
                iid = imp.id if isinstance(imp, (_View, Imp)) else None
                if not isinstance(iid, str) or not iid:
                    continue
                if iid in seen:
                    yield f"imp[{i}].id", f"must be unique (duplicates imp[{seen[iid]}].id)"
                else:
                    seen[iid] = i
        if (obj.site is not None) + (obj.app is not None) + (obj.dooh is not None) > 1:
            first = None
            for k in PLACEMENTS:
                if getattr(obj, k) is None:
                    continue
                if first is None:
                    first = k
                else:
                    yield k, f"{PLACEMENT_RULE} ({first} is already present)"

    @property
    def auction_type(self) -> int:
        return 2 if self.at is None else self.at

    def out_of_range(self) -> list[FieldWarning]:
        """Optional fields out of range, to drop before publishing (usually ``[]``)."""
        out: list[FieldWarning] = []
        for owner, path in ((self.device, "device.geo"), (self.user, "user.geo")):
            geo = owner.geo if owner is not None else None
            if geo is not None and (geo.lat is not None or geo.lon is not None):
                out.extend(FieldWarning(f"{path}.{f}", r) for f, r in geo.out_of_range())
        return out


# --- Checking a body ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Violation:
    """One reason a BidRequest is rejected: the JSON path of the field and the rule."""

    path: str
    rule: str

    def to_dict(self) -> dict[str, str]:
        """The wire shape in the gateway's 400 body."""
        return {"field": self.path, "reason": self.rule}


@dataclass(frozen=True, slots=True)
class FieldWarning:
    """An optional field dropped because its value is out of range; the request goes on."""

    path: str
    rule: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.path, "reason": self.rule}


_DECODER = msgspec.json.Decoder(BidRequest)
_AT = re.compile(r" - at `\$(.*)`$")
_NULLABLE = re.compile(r"`([^`]*?) \| null`")


def decode(raw: bytes) -> BidRequest:
    """Decode and validate one body in one pass; raises ``msgspec.DecodeError`` (bad JSON),
    ``UnicodeDecodeError`` (a string that is not UTF-8) or ``msgspec.ValidationError``."""
    return _DECODER.decode(raw)


def check(raw: bytes) -> tuple[BidRequest | None, list[Violation]]:
    """(request, []) for a valid body, else (None, every violation found)."""
    try:
        return _DECODER.decode(raw), []
    except msgspec.ValidationError as exc:
        first = exc
    except msgspec.DecodeError as exc:
        return None, [Violation("", f"body is not valid JSON: {exc}")]
    except UnicodeDecodeError as exc:  # a string that is not UTF-8 (found by test_fuzz.py)
        return None, [Violation("", f"body is not valid UTF-8: {exc.reason} at byte "
                                    f"{exc.start}")]
    try:  # the error path only: find every violation, not just the first
        return None, violations(orjson.loads(raw)) or [_from_error(first, "")]
    except orjson.JSONDecodeError:  # JSON msgspec reads but orjson does not (huge ints)
        return None, [_from_error(first, "")]


def violations(obj: object) -> list[Violation]:
    """Every violation in an already-parsed JSON value (``[]`` when valid). Never raises."""
    if not isinstance(obj, dict):
        return [Violation("", "request body must be a JSON object")]
    out: list[Violation] = []
    try:
        _collect(obj, BidRequest, "", out)
    except Exception:  # pragma: no cover - defensive: the contract is "never raises"
        out.append(Violation("", "request could not be validated"))
    return out


def _join(path: str, key: str) -> str:
    if not key:
        return path
    if key.startswith("["):
        return path + key
    return f"{path}.{key}" if path else key


def _unwrap(tp: Any) -> Any:
    """``Annotated[X, ...] | None`` → X (the type to descend into)."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
            continue
        args = get_args(tp)
        if get_origin(tp) in (Union, type(int | None)) and type(None) in args:
            rest = [a for a in args if a is not type(None)]
            if len(rest) == 1:
                tp = rest[0]
                continue
        return tp


def _from_error(exc: msgspec.ValidationError, path: str) -> Violation:
    msg = str(exc)
    sub = ""
    m = _AT.search(msg)
    if m:
        sub, msg = m.group(1).lstrip("."), msg[: m.start()]
    missing = re.match(r"Object missing required field `([^`]*)`", msg)
    if missing:
        return Violation(_join(_join(path, sub), missing.group(1)), "is required")
    return Violation(_join(path, sub), _NULLABLE.sub(r"`\1`", msg))


def _collect(value: Any, tp: Any, path: str, out: list[Violation]) -> None:
    """Append the violations of ``value`` against type ``tp``, descending into structs and
    arrays of structs so that every broken field is named, not only the first."""
    try:
        msgspec.convert(value, tp, strict=True)
        return
    except msgspec.ValidationError as exc:
        err = exc
    inner = _unwrap(tp)
    if isinstance(inner, type) and issubclass(inner, Struct) and isinstance(value, dict):
        before = len(out)
        for f in msgspec.structs.fields(inner):
            sub = _join(path, f.encode_name)
            if f.encode_name in value:
                _collect(value[f.encode_name], f.type, sub, out)
            elif f.required:
                out.append(Violation(sub, "is required"))
        if issubclass(inner, _Checked):
            out.extend(Violation(_join(path, f), r) for f, r in inner.rules(_View(value)))
        if len(out) == before:
            out.append(_from_error(err, path))
        return
    elem = get_args(inner)[0] if get_origin(inner) is list else None
    elem_inner = _unwrap(elem) if elem is not None else None
    if (isinstance(value, list) and value and isinstance(elem_inner, type)
            and issubclass(elem_inner, Struct)):
        before = len(out)
        for i, item in enumerate(value):
            _collect(item, elem, f"{path}[{i}]", out)
        if len(out) == before:
            out.append(_from_error(err, path))
        return
    out.append(_from_error(err, path))


def drop_fields(obj: dict, paths: list[str]) -> dict:
    """Remove dotted ``paths`` (e.g. ``device.geo.lat``) from a parsed request, in place."""
    for path in paths:
        *parents, last = path.split(".")
        cur: Any = obj
        for p in parents:
            cur = cur.get(p) if isinstance(cur, dict) else None
        if isinstance(cur, dict):
            cur.pop(last, None)
    return obj


def json_schema() -> dict:
    """The request schema for OpenAPI, generated from :class:`BidRequest` (self-contained)."""
    schema = msgspec.json.schema(BidRequest)
    defs = schema.pop("$defs", {})

    def walk(node: object) -> object:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    out = walk(schema)
    assert isinstance(out, dict)
    out["description"] = (
        "OpenRTB 2.5/2.6 BidRequest. Rules beyond types: at least one media object per imp; "
        "unique imp ids; at most one of site, app, dooh; minduration <= maxduration; "
        f"at is {AUCTION_TYPES}. Unknown fields and ext objects pass through untouched. "
        "Optional fields out of range (geo lat/lon) are dropped and listed as warnings."
    )
    return out
