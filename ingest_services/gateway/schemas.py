"""Response models and request-body schemas for an accurate OpenAPI document.

Bodies are read raw (to enforce the size limit and pass unknown fields through byte for
byte), so the request schema is not inferred from a handler argument: it is generated from
the one OpenRTB definition the gateway validates with (``contracts/openrtb.py``), so the
documentation cannot disagree with the behaviour.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from ingest_services.contracts import openrtb


class Violation(BaseModel):
    field: str = Field(description="JSON path of the offending field, e.g. imp[0].video.mimes")
    reason: str


class Accepted(BaseModel):
    id: str = Field(description="The OpenRTB request id, as sent")
    status: str = Field("accepted", description="Always 'accepted'")
    rid: str = Field(description="Helios id of this accepted request (unique)")
    warnings: list[Violation] | None = Field(
        None, description="Optional fields dropped because out of range (present if any)")


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
    warnings: list[LineRejected] | None = Field(
        None, description="Fields dropped from accepted lines because out of range")


class Health(BaseModel):
    status: str


BID_REQUEST_BODY = {
    "required": True,
    "content": {"application/json": {"schema": openrtb.json_schema()}},
}
NDJSON_BODY = {
    "required": True,
    "content": {
        "application/x-ndjson": {
            "schema": {"type": "string", "description": "One OpenRTB BidRequest JSON per line"}
        }
    },
}
