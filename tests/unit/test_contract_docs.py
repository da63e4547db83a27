"""docs/messages.md cannot drift from the message contracts: each topic's field tables list
exactly the fields of its msgspec struct (nested structs as ``bid.price``), and the DLQ
headers it names are the ones the struct produces."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from ingest_services.contracts import messages as m

DOC = (Path(__file__).resolve().parents[2] / "docs" / "messages.md").read_text()


def _section(title: str) -> str:
    start = DOC.index(f"\n## `{title}`")
    nxt = DOC.find("\n## ", start + 1)
    return DOC[start: nxt if nxt > 0 else None]


def _documented(section: str) -> set[str]:
    return set(re.findall(r"^\| `([a-z_.]+)` \|", section, flags=re.M))


def _fields(struct: type, prefix: str = "") -> set[str]:
    out = set()
    for f in msgspec.structs.fields(struct):
        out.add(prefix + f.encode_name)
        inner = f.type
        for arg in getattr(inner, "__args__", ()):
            if isinstance(arg, type) and issubclass(arg, msgspec.Struct) and arg is not \
                    m.BidRequest:
                out |= _fields(arg, f"{prefix}{f.encode_name}.")
    return out


@pytest.mark.parametrize("topic", sorted(m.TOPIC_CONTRACTS))
def test_every_field_of_the_contract_is_documented_and_nothing_else(topic: str) -> None:
    struct = m.TOPIC_CONTRACTS[topic]
    expected = _fields(struct)
    if struct is m.BidResponse:  # imps[] entries have their own table
        expected |= _fields(m.ImpResponse)
    assert _documented(_section(topic)) == expected


def test_dead_letter_headers_are_documented() -> None:
    names = {h for h, _ in m.DeadLetter(reason="r", source_topic="t", source_partition=0,
                                        source_offset=1, service="s").headers()}
    assert names == {m.H_REASON, m.H_SOURCE_TOPIC, m.H_SOURCE_PARTITION, m.H_SOURCE_OFFSET,
                     m.H_SERVICE}
    for name in names:
        assert f"`{name}`" in DOC, name
