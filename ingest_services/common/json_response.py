"""The JSON response of every Helios HTTP app: orjson, the fast codec DESIGN.md asks for."""

from __future__ import annotations

import orjson
from fastapi.responses import Response


class JSON(Response):
    """orjson-encoded JSON. A handler that returns it directly skips FastAPI's re-validation
    of the body against the response model (the model still documents the shape)."""

    media_type = "application/json"

    def render(self, content: object) -> bytes:
        return orjson.dumps(content)
