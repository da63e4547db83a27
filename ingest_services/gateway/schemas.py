"""Response models and request-body schemas for an accurate OpenAPI document.

Bodies are read raw (to enforce the size limit and pass unknown fields through byte for
byte), so the request schemas are declared here rather than inferred from a model.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Accepted(BaseModel):
    id: str = Field(description="The OpenRTB request id, as sent")
    status: str = Field("accepted", description="Always 'accepted'")
    rid: str = Field(description="Helios id of this accepted request (unique)")


class Violation(BaseModel):
    field: str = Field(description="JSON path of the offending field, e.g. imp[0].video.mimes")
    reason: str


class ErrorBody(BaseModel):
    error: str
    field: str | None = Field(None, description="The first offending field")
    reason: str | None = None
    violations: list[Violation] | None = None


class LineRejected(Violation):
    line: int = Field(description="1-based line number in the NDJSON body")


class LineFailed(BaseModel):
    line: int
    reason: str


class BatchResult(BaseModel):
    accepted: int
    rejected: list[LineRejected]
    failed: list[LineFailed] = Field(description="Valid lines the broker did not acknowledge")


class Health(BaseModel):
    status: str


class _Imp(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    banner: dict | None = None
    video: dict | None = None
    audio: dict | None = None
    native: dict | None = None
    bidfloor: float | None = Field(None, ge=0)
    bidfloorcur: str | None = "USD"


class BidRequest(BaseModel):
    """OpenRTB 2.5/2.6 BidRequest (the main fields; all others pass through)."""

    model_config = ConfigDict(extra="allow")
    id: str = Field(min_length=1)
    imp: list[_Imp] = Field(min_length=1)
    site: dict | None = None
    app: dict | None = None
    dooh: dict | None = None
    device: dict | None = None
    user: dict | None = None
    at: int | None = 2
    tmax: int | None = Field(None, ge=0)
    cur: list[str] | None = None
    regs: dict | None = None
    source: dict | None = None


def _inline(schema: dict) -> dict:
    """Resolve local ``$defs`` so the schema is self-contained inside the OpenAPI document."""
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

    return walk(schema)  # type: ignore[return-value]


BID_REQUEST_BODY = {
    "required": True,
    "content": {"application/json": {"schema": _inline(BidRequest.model_json_schema())}},
}
NDJSON_BODY = {
    "required": True,
    "content": {
        "application/x-ndjson": {
            "schema": {"type": "string", "description": "One OpenRTB BidRequest JSON per line"}
        }
    },
}
