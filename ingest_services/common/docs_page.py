"""Swagger UI served from the package, not a CDN: ``/docs`` works on a machine (or in a
cluster) with no internet. The assets are swagger-ui-dist 5.35.0 from the npm registry,
vendored unchanged with its LICENSE and NOTICE in ``swagger/``. Both the gateway and the
analytics API call :func:`install`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles

ASSETS = Path(__file__).with_name("swagger")
PREFIX = "/docs-assets"


def install(app: FastAPI) -> None:
    """Serve ``/docs`` with local assets (create the app with ``docs_url=None``)."""
    app.mount(PREFIX, StaticFiles(directory=ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} — docs",
            swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{PREFIX}/favicon-32x32.png")
