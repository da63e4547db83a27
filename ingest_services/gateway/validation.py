"""Fast, pure-Python structural validation of OpenRTB 2.5 / 2.6 BidRequests.

The ingest gateway calls :func:`validate_bid_request` on every request body (already decoded by
``orjson.loads``) and answers 400 with the returned violations when the list is non-empty.

Design choices, and why:

* **Hot path.** The gateway targets hundreds of thousands of requests per second, so this module
  avoids pydantic / jsonschema (model construction and schema walking cost tens of microseconds
  per request) and compiles no regular expressions. Checks are plain ``dict.get`` lookups and
  ``type()`` tests over constant key tuples; a valid request allocates little beyond the (empty)
  result list. Path strings such as ``"imp[2].video.mimes"`` are formatted only when a violation
  is actually found.
* **Strict where the spec is strict, permissive elsewhere.** Only what OpenRTB 2.6 rules out
  (missing required fields, wrong JSON types, out-of-range enums and negative sizes/prices) is
  rejected. Unknown fields and every ``ext`` object pass untouched, except for the handful of
  well-known OpenRTB 2.5 ``ext`` placements (``regs.ext.gdpr``, ``regs.ext.us_privacy``,
  ``user.ext.consent``, ``user.ext.eids``, ``source.ext.schain``) that 2.6 promoted to first-class
  fields: those are validated in both placements so that 2.5 and 2.6 senders are held to the same
  rules.
* **JSON types.** ``null`` is treated as "absent" for optional fields (and as "missing" for
  required ones). JSON booleans are never accepted where a number is required (Python's ``bool``
  is an ``int`` subclass, so every integer check uses ``type(v) is int``). Integers are accepted
  wherever the spec asks for a float; floats are *not* accepted where it asks for an integer.
* **Total function.** The validator never raises, whatever the input, so the caller can map its
  result straight to an HTTP response.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Violation", "validate_bid_request"]


@dataclass(frozen=True, slots=True)
class Violation:
    """One reason a BidRequest is rejected.

    ``path`` is the JSON path of the offending field (``"imp[0].video.mimes"``, ``"regs.gdpr"``,
    ``""`` for the root) and ``rule`` a short human-readable reason. Instances are immutable and
    slotted so that they are cheap to build and safe to share.
    """

    path: str
    rule: str

    def to_dict(self) -> dict[str, str]:
        """Return the wire shape used in the gateway's 400 response body."""
        return {"field": self.path, "reason": self.rule}


# --- Rule texts (module constants: no per-call string building on the valid path) -------------

_R_ROOT = "request body must be a JSON object"
_R_OBJ = "must be an object"
_R_STR = "must be a string"
_R_REQ_STR = "is required and must be a string"
_R_NONEMPTY_STR = "must be a non-empty string"
_R_REQ_NONEMPTY_STR = "is required and must be a non-empty string"
_R_STR_ARRAY = "must be an array of strings"
_R_NONEMPTY_STR_ARRAY = "must be a non-empty array of strings"
_R_REQ_NONEMPTY_STR_ARRAY = "is required and must be a non-empty array of strings"
_R_OBJ_ARRAY = "must be an array of objects"
_R_NONEMPTY_OBJ_ARRAY = "must be a non-empty array of objects"
_R_REQ_NONEMPTY_OBJ_ARRAY = "is required and must be a non-empty array of objects"
_R_REQ_OBJ_ARRAY = "is required and must be an array of objects"
_R_NONNEG_INT = "must be a non-negative integer"
_R_NONNEG_NUM = "must be a non-negative number"
_R_FLAG = "must be 0 or 1"
_R_REQ_FLAG = "is required and must be 0 or 1"
_R_CUR = "must be a 3-letter uppercase ISO-4217 currency code"
_R_CUR_ARRAY = "must be an array of 3-letter uppercase ISO-4217 currency codes"
_R_AT = "must be 1 (first price), 2 (second price plus) or >= 500 (exchange-specific)"
_R_LAT = "must be a number between -90 and 90"
_R_LON = "must be a number between -180 and 180"
_R_MEDIA = "must contain at least one of banner, video, audio, native (objects)"
_R_DURATION_ORDER = "must not be greater than maxduration"
_R_PLACEMENT = "at most one of site, app, dooh may be present"

_INF = float("inf")

# --- Field groups (constant tuples iterated by the scanners below) ----------------------------

_REQ_FLAGS = ("test", "allimps")
_REQ_STR_ARRAYS = ("bcat", "badv", "bapp", "wseat", "bseat", "wlang")
_IMP_FLAGS = ("instl", "secure", "clickbrowser")
_BANNER_INTS = ("w", "h", "wmax", "hmax", "wmin", "hmin")
_WH = ("w", "h")
_DURATIONS = ("minduration", "maxduration")
_PLACEMENTS = ("site", "app", "dooh")
_EMPTY: tuple[str, ...] = ()

_Add = Callable[[Violation], None]


def validate_bid_request(req: object) -> list[Violation]:
    """Return every violation found in ``req`` (an empty list means valid). Never raises.

    ``req`` is whatever ``orjson.loads`` produced from the HTTP body, so it may be any JSON value;
    anything but an object yields a single root violation.
    """
    if not isinstance(req, dict):
        return [Violation("", _R_ROOT)]
    out: list[Violation] = []
    try:
        _check_request(req, out.append)
    except Exception:  # pragma: no cover - defensive: the contract is "never raises"
        out.append(Violation("", "request could not be validated"))
    return out


# --- Scalar predicates -------------------------------------------------------------------------


def _is_nonempty_str(v: Any) -> bool:
    return isinstance(v, str) and v != ""


def _is_nonneg_number(v: Any) -> bool:
    """JSON number >= 0; rejects booleans, NaN and infinity."""
    t = type(v)
    if t is int:
        return v >= 0
    if t is float:
        return 0.0 <= v < _INF  # NaN compares False
    return False


def _is_number_between(v: Any, lo: float, hi: float) -> bool:
    t = type(v)
    return (t is int or t is float) and lo <= v <= hi


def _is_currency(v: Any) -> bool:
    """ISO-4217-like: exactly three uppercase ASCII letters (no regex needed)."""
    return isinstance(v, str) and len(v) == 3 and v.isascii() and v.isalpha() and v.isupper()


def _is_str_array(v: Any) -> bool:
    if not isinstance(v, list):
        return False
    for s in v:  # noqa: SIM110 - explicit loop avoids a generator allocation
        if not isinstance(s, str):
            return False
    return True


def _is_nonempty_str_array(v: Any) -> bool:
    return _is_str_array(v) and len(v) > 0


# --- Scanners: check a group of optional keys, return the failing ones (usually ``()``) ---------


def _bad_nonneg_ints(obj: dict, keys: tuple[str, ...]) -> list[str] | tuple[str, ...]:
    bad = None
    for k in keys:
        v = obj.get(k)
        if v is not None and (type(v) is not int or v < 0):
            if bad is None:
                bad = [k]
            else:
                bad.append(k)
    return bad or _EMPTY


def _bad_flags(obj: dict, keys: tuple[str, ...]) -> list[str] | tuple[str, ...]:
    bad = None
    for k in keys:
        v = obj.get(k)
        if v is not None and (type(v) is not int or (v != 0 and v != 1)):
            if bad is None:
                bad = [k]
            else:
                bad.append(k)
    return bad or _EMPTY


def _bad_str_arrays(obj: dict, keys: tuple[str, ...]) -> list[str] | tuple[str, ...]:
    bad = None
    for k in keys:
        v = obj.get(k)
        if v is not None and not _is_str_array(v):
            if bad is None:
                bad = [k]
            else:
                bad.append(k)
    return bad or _EMPTY


def _is_bad_flag(v: Any) -> bool:
    """True when an optional 0/1 field is present and not 0 or 1."""
    return v is not None and (type(v) is not int or (v != 0 and v != 1))


# --- BidRequest --------------------------------------------------------------------------------


def _check_request(req: dict, add: _Add) -> None:
    v = req.get("id")
    if v is None:
        add(Violation("id", _R_REQ_NONEMPTY_STR))
    elif not _is_nonempty_str(v):
        add(Violation("id", _R_NONEMPTY_STR))

    imps = req.get("imp")
    if imps is None:
        add(Violation("imp", _R_REQ_NONEMPTY_OBJ_ARRAY))
    elif not isinstance(imps, list) or not imps:
        add(Violation("imp", _R_NONEMPTY_OBJ_ARRAY))
    else:
        _check_imps(imps, add)

    v = req.get("tmax")
    if v is not None and (type(v) is not int or v < 0):
        add(Violation("tmax", _R_NONNEG_INT))
    v = req.get("at")
    if v is not None and not (type(v) is int and (v == 1 or v == 2 or v >= 500)):
        add(Violation("at", _R_AT))
    for k in _bad_flags(req, _REQ_FLAGS):
        add(Violation(k, _R_FLAG))

    v = req.get("cur")
    if v is not None:
        if not isinstance(v, list):
            add(Violation("cur", _R_CUR_ARRAY))
        else:
            for n, c in enumerate(v):
                if not _is_currency(c):
                    add(Violation(f"cur[{n}]", _R_CUR))
    for k in _bad_str_arrays(req, _REQ_STR_ARRAYS):
        add(Violation(k, _R_STR_ARRAY))

    first = None
    for k in _PLACEMENTS:
        v = req.get(k)
        if v is None:
            continue
        if first is None:
            first = k
        else:
            add(Violation(k, f"{_R_PLACEMENT} ({first} is already present)"))
        if not isinstance(v, dict):
            add(Violation(k, _R_OBJ))
        elif k != "dooh":
            c = v.get("cat")
            if c is not None and not _is_str_array(c):
                add(Violation(f"{k}.cat", _R_STR_ARRAY))

    v = req.get("device")
    if v is not None:
        if isinstance(v, dict):
            _check_device(v, add)
        else:
            add(Violation("device", _R_OBJ))
    v = req.get("user")
    if v is not None:
        if isinstance(v, dict):
            _check_user(v, add)
        else:
            add(Violation("user", _R_OBJ))
    v = req.get("regs")
    if v is not None:
        if isinstance(v, dict):
            _check_regs(v, add)
        else:
            add(Violation("regs", _R_OBJ))
    v = req.get("source")
    if v is not None:
        if isinstance(v, dict):
            _check_source(v, add)
        else:
            add(Violation("source", _R_OBJ))


# --- Imp and its media objects -----------------------------------------------------------------


def _check_imps(imps: list, add: _Add) -> None:
    """Check every imp; imp ids must be unique (the later duplicate is reported)."""
    seen: dict[str, int] | None = None
    multi = len(imps) > 1
    for i, imp in enumerate(imps):
        if not isinstance(imp, dict):
            add(Violation(f"imp[{i}]", _R_OBJ))
            continue
        iid = imp.get("id")
        if iid is None:
            add(Violation(f"imp[{i}].id", _R_REQ_NONEMPTY_STR))
        elif not _is_nonempty_str(iid):
            add(Violation(f"imp[{i}].id", _R_NONEMPTY_STR))
        elif multi:
            if seen is None:
                seen = {iid: i}
            elif iid in seen:
                add(Violation(f"imp[{i}].id", f"must be unique (duplicates imp[{seen[iid]}].id)"))
            else:
                seen[iid] = i
        _check_imp(imp, i, add)


def _check_imp(imp: dict, i: int, add: _Add) -> None:
    has_media = False
    v = imp.get("banner")
    if v is not None:
        has_media = True
        if isinstance(v, dict):
            _check_banner(v, i, add)
        else:
            add(Violation(f"imp[{i}].banner", _R_OBJ))
    v = imp.get("video")
    if v is not None:
        has_media = True
        if isinstance(v, dict):
            _check_av(v, i, "video", add)
            for k in _bad_nonneg_ints(v, _WH):
                add(Violation(f"imp[{i}].video.{k}", _R_NONNEG_INT))
        else:
            add(Violation(f"imp[{i}].video", _R_OBJ))
    v = imp.get("audio")
    if v is not None:
        has_media = True
        if isinstance(v, dict):
            _check_av(v, i, "audio", add)
        else:
            add(Violation(f"imp[{i}].audio", _R_OBJ))
    v = imp.get("native")
    if v is not None:
        has_media = True
        if isinstance(v, dict):
            r = v.get("request")
            if r is None:
                add(Violation(f"imp[{i}].native.request", _R_REQ_NONEMPTY_STR))
            elif not _is_nonempty_str(r):
                add(Violation(f"imp[{i}].native.request", _R_NONEMPTY_STR))
        else:
            add(Violation(f"imp[{i}].native", _R_OBJ))
    if not has_media:
        add(Violation(f"imp[{i}]", _R_MEDIA))

    v = imp.get("pmp")
    if v is not None:
        if isinstance(v, dict):
            _check_pmp(v, i, add)
        else:
            add(Violation(f"imp[{i}].pmp", _R_OBJ))

    v = imp.get("bidfloor")
    if v is not None and not _is_nonneg_number(v):
        add(Violation(f"imp[{i}].bidfloor", _R_NONNEG_NUM))
    v = imp.get("bidfloorcur")
    if v is not None and not _is_currency(v):
        add(Violation(f"imp[{i}].bidfloorcur", _R_CUR))
    v = imp.get("exp")
    if v is not None and (type(v) is not int or v < 0):
        add(Violation(f"imp[{i}].exp", _R_NONNEG_INT))
    for k in _bad_flags(imp, _IMP_FLAGS):
        add(Violation(f"imp[{i}].{k}", _R_FLAG))
    v = imp.get("iframebuster")
    if v is not None and not _is_str_array(v):
        add(Violation(f"imp[{i}].iframebuster", _R_STR_ARRAY))


def _check_banner(banner: dict, i: int, add: _Add) -> None:
    for k in _bad_nonneg_ints(banner, _BANNER_INTS):
        add(Violation(f"imp[{i}].banner.{k}", _R_NONNEG_INT))
    fmt = banner.get("format")
    if fmt is not None:
        if not isinstance(fmt, list):
            add(Violation(f"imp[{i}].banner.format", _R_OBJ_ARRAY))
        else:
            for n, f in enumerate(fmt):
                if not isinstance(f, dict):
                    add(Violation(f"imp[{i}].banner.format[{n}]", _R_OBJ))
                    continue
                for k in _bad_nonneg_ints(f, _WH):
                    add(Violation(f"imp[{i}].banner.format[{n}].{k}", _R_NONNEG_INT))
    v = banner.get("mimes")
    if v is not None and not _is_str_array(v):
        add(Violation(f"imp[{i}].banner.mimes", _R_STR_ARRAY))


def _check_av(obj: dict, i: int, kind: str, add: _Add) -> None:
    """Rules shared by Video and Audio: required mimes, sane min/max durations."""
    v = obj.get("mimes")
    if v is None:
        add(Violation(f"imp[{i}].{kind}.mimes", _R_REQ_NONEMPTY_STR_ARRAY))
    elif not _is_nonempty_str_array(v):
        add(Violation(f"imp[{i}].{kind}.mimes", _R_NONEMPTY_STR_ARRAY))
    bad = _bad_nonneg_ints(obj, _DURATIONS)
    for k in bad:
        add(Violation(f"imp[{i}].{kind}.{k}", _R_NONNEG_INT))
    if not bad:
        lo = obj.get("minduration")
        hi = obj.get("maxduration")
        if lo is not None and hi is not None and lo > hi:
            add(Violation(f"imp[{i}].{kind}.minduration", _R_DURATION_ORDER))


def _check_pmp(pmp: dict, i: int, add: _Add) -> None:
    if _is_bad_flag(pmp.get("private_auction")):
        add(Violation(f"imp[{i}].pmp.private_auction", _R_FLAG))
    deals = pmp.get("deals")
    if deals is None:
        return
    if not isinstance(deals, list):
        add(Violation(f"imp[{i}].pmp.deals", _R_OBJ_ARRAY))
        return
    for j, deal in enumerate(deals):
        if not isinstance(deal, dict):
            add(Violation(f"imp[{i}].pmp.deals[{j}]", _R_OBJ))
            continue
        v = deal.get("id")
        if v is None:
            add(Violation(f"imp[{i}].pmp.deals[{j}].id", _R_REQ_NONEMPTY_STR))
        elif not _is_nonempty_str(v):
            add(Violation(f"imp[{i}].pmp.deals[{j}].id", _R_NONEMPTY_STR))
        v = deal.get("bidfloor")
        if v is not None and not _is_nonneg_number(v):
            add(Violation(f"imp[{i}].pmp.deals[{j}].bidfloor", _R_NONNEG_NUM))


# --- Device, User, Regs, Source ----------------------------------------------------------------


def _check_geo(geo: object, path: str, add: _Add) -> None:
    if not isinstance(geo, dict):
        add(Violation(path, _R_OBJ))
        return
    v = geo.get("lat")
    if v is not None and not _is_number_between(v, -90, 90):
        add(Violation(f"{path}.lat", _R_LAT))
    v = geo.get("lon")
    if v is not None and not _is_number_between(v, -180, 180):
        add(Violation(f"{path}.lon", _R_LON))


def _check_device(device: dict, add: _Add) -> None:
    for k in _bad_nonneg_ints(device, _WH):
        add(Violation(f"device.{k}", _R_NONNEG_INT))
    v = device.get("geo")
    if v is not None:
        _check_geo(v, "device.geo", add)


def _check_user(user: dict, add: _Add) -> None:
    v = user.get("geo")
    if v is not None:
        _check_geo(v, "user.geo", add)
    v = user.get("consent")  # 2.6 placement
    if v is not None and not isinstance(v, str):
        add(Violation("user.consent", _R_STR))
    v = user.get("eids")  # 2.6 placement
    if v is not None:
        _check_eids(v, "user.eids", add)
    ext = user.get("ext")
    if isinstance(ext, dict):  # 2.5 placements; any other ext content passes untouched
        v = ext.get("consent")
        if v is not None and not isinstance(v, str):
            add(Violation("user.ext.consent", _R_STR))
        v = ext.get("eids")
        if v is not None:
            _check_eids(v, "user.ext.eids", add)


def _check_eids(eids: object, path: str, add: _Add) -> None:
    """Extended IDs: ``[{"source": str, "uids": [{"id": str, ...}, ...]}, ...]``."""
    if not isinstance(eids, list):
        add(Violation(path, _R_OBJ_ARRAY))
        return
    for n, eid in enumerate(eids):
        if not isinstance(eid, dict):
            add(Violation(f"{path}[{n}]", _R_OBJ))
            continue
        if not isinstance(eid.get("source"), str):
            add(Violation(f"{path}[{n}].source", _R_REQ_STR))
        uids = eid.get("uids")
        if not isinstance(uids, list):
            add(Violation(f"{path}[{n}].uids", _R_REQ_OBJ_ARRAY))
            continue
        for m, uid in enumerate(uids):
            if not isinstance(uid, dict):
                add(Violation(f"{path}[{n}].uids[{m}]", _R_OBJ))
            elif not isinstance(uid.get("id"), str):
                add(Violation(f"{path}[{n}].uids[{m}].id", _R_REQ_STR))


def _check_regs(regs: dict, add: _Add) -> None:
    if _is_bad_flag(regs.get("coppa")):
        add(Violation("regs.coppa", _R_FLAG))
    if _is_bad_flag(regs.get("gdpr")):  # 2.6 placement
        add(Violation("regs.gdpr", _R_FLAG))
    v = regs.get("us_privacy")  # 2.6 placement
    if v is not None and not isinstance(v, str):
        add(Violation("regs.us_privacy", _R_STR))
    ext = regs.get("ext")
    if isinstance(ext, dict):  # 2.5 placements; any other ext content passes untouched
        if _is_bad_flag(ext.get("gdpr")):
            add(Violation("regs.ext.gdpr", _R_FLAG))
        v = ext.get("us_privacy")
        if v is not None and not isinstance(v, str):
            add(Violation("regs.ext.us_privacy", _R_STR))


def _check_source(source: dict, add: _Add) -> None:
    v = source.get("schain")  # 2.6 placement
    if v is not None:
        _check_schain(v, "source.schain", add)
    ext = source.get("ext")
    if isinstance(ext, dict):  # 2.5 placement; any other ext content passes untouched
        v = ext.get("schain")
        if v is not None:
            _check_schain(v, "source.ext.schain", add)


def _check_schain(schain: object, path: str, add: _Add) -> None:
    """SupplyChain: ``complete`` in {0, 1}; ``nodes`` objects with string ``asi`` and ``sid``."""
    if not isinstance(schain, dict):
        add(Violation(path, _R_OBJ))
        return
    v = schain.get("complete")
    if v is None:
        add(Violation(f"{path}.complete", _R_REQ_FLAG))
    elif _is_bad_flag(v):
        add(Violation(f"{path}.complete", _R_FLAG))
    nodes = schain.get("nodes")
    if not isinstance(nodes, list):
        add(Violation(f"{path}.nodes", _R_REQ_OBJ_ARRAY))
        return
    for n, node in enumerate(nodes):
        if not isinstance(node, dict):
            add(Violation(f"{path}.nodes[{n}]", _R_OBJ))
            continue
        if not isinstance(node.get("asi"), str):
            add(Violation(f"{path}.nodes[{n}].asi", _R_REQ_STR))
        if not isinstance(node.get("sid"), str):
            add(Violation(f"{path}.nodes[{n}].sid", _R_REQ_STR))
