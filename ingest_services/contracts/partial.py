"""Typed partial views of a contract: decode only the fields a consumer reads.

A consumer that reads a handful of fields of a large message (the bidder reads ~10 of an
OpenRTB request's hundreds) pays for every field it decodes: building nested structs,
lists and strings it then drops. :func:`view` derives, from a contract ``Struct``, a
``Struct`` with only the named fields — same names, same types and constraints, same
defaults — so msgspec skips everything else while parsing (unknown fields cost a scan, no
objects). It is derived, never written by hand: a field renamed or retyped in the contract
is renamed or retyped in every view of it, and naming a field the contract does not have
fails at import.

What a view does not do: run the contract's ``rules`` (``__post_init__``): they read
fields a view may leave out. A view is for consumers of topics whose producer already
checked the full contract (the gateway validates every request before publishing).

Spec: ``{field: ...}`` where the value is ``KEEP`` (the contract's type as is), ``PRESENT``
(only whether the field is there, for a struct field: an empty view of its struct, so its
content is skipped) or a nested spec (the field's
struct type, itself viewed; also inside ``list[...]`` and ``... | None``).
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

import msgspec
from msgspec import NODEFAULT, Struct

KEEP = "keep"
PRESENT = "present"
Spec = dict[str, Any]


def view(contract: type[Struct], spec: Spec, name: str | None = None,
         namespace: dict[str, Any] | None = None) -> type[Struct]:
    """A ``Struct`` with the ``spec`` fields of ``contract`` (see the module docstring).
    The contract's properties come along (one that reads a field the view leaves out raises
    ``AttributeError`` when called); ``namespace`` adds more."""
    by_name = {f.name: f for f in msgspec.structs.fields(contract)}
    unknown = sorted(set(spec) - set(by_name))
    if unknown:
        raise TypeError(f"{contract.__name__} has no field(s) {unknown}: a view names "
                        f"only fields of its contract")
    fields: list[tuple] = []
    for fname, sub in spec.items():
        f = by_name[fname]
        if sub == KEEP:
            tp = f.type
        elif sub == PRESENT:  # its struct with no fields: parsed as an object, kept empty
            tp = _retype(f.type, {}, f"{name or contract.__name__ + 'View'}_{fname}")
        elif isinstance(sub, dict):
            tp = _retype(f.type, sub, f"{name or contract.__name__ + 'View'}_{fname}")
        else:
            raise TypeError(f"spec for {contract.__name__}.{fname} must be KEEP, PRESENT "
                            f"or a dict, not {sub!r}")
        if f.default is not NODEFAULT:
            fields.append((fname, tp, f.default))
        elif f.default_factory is not NODEFAULT:
            fields.append((fname, tp, msgspec.field(default_factory=f.default_factory)))
        else:
            fields.append((fname, tp))
    ns = {k: v for cls in reversed(contract.__mro__) if issubclass(cls, Struct)
          and cls is not Struct for k, v in vars(cls).items() if isinstance(v, property)}
    ns.update(namespace or {})
    cfg = contract.__struct_config__
    return msgspec.defstruct(
        name or f"{contract.__name__}View", fields, kw_only=True,
        omit_defaults=cfg.omit_defaults, rename=None, namespace=ns,
        module=contract.__module__,
    )


def _retype(tp: Any, spec: Spec, name: str) -> Any:
    """``tp`` with its struct type replaced by its view (through Annotated, | None, list)."""
    origin = get_origin(tp)
    if origin is Annotated:
        inner, *meta = get_args(tp)
        return Annotated[(_retype(inner, spec, name), *meta)]
    if origin in (Union, types.UnionType):
        return Union[tuple(_retype(a, spec, name) for a in get_args(tp))]  # noqa: UP007
    if tp is type(None):
        return tp
    if origin is list:
        return list[_retype(get_args(tp)[0], spec, name)]
    if isinstance(tp, type) and issubclass(tp, Struct):
        return view(tp, spec, name)
    raise TypeError(f"cannot view into {tp!r}: a nested spec needs a struct type")
