"""The OpenAPI document, Swagger UI (served offline from swagger-ui-py) and ReDoc."""

from __future__ import annotations

import html

from aiohttp import web
from swagger_ui.core import ApplicationDocument

from calsvc.web import keys

_REDOC = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>calsvc API reference</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><redoc spec-url="/openapi.json"></redoc><script src="{script}"></script></body></html>
"""


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[keys.OPENAPI])


async def redoc(request: web.Request) -> web.Response:
    script = html.escape(request.app[keys.SETTINGS].server.redoc_script_url, quote=True)
    return web.Response(text=_REDOC.format(script=script), content_type="text/html")


_PAGE: list[tuple[str, str]] = []  # the Swagger UI page and its files' folder: made once


def _swagger_page(app: web.Application) -> tuple[str, str]:
    if not _PAGE:
        doc = ApplicationDocument(
            app, app_type="aiohttp", config_rel_url="/openapi.json", url_prefix="/docs", title="calsvc API"
        )
        doc.parameters["url"] = '"/openapi.json"'
        _PAGE.append((doc.doc_html, doc.static_dir))
    return _PAGE[0]


def add_docs(app: web.Application) -> None:
    """Mount /openapi.json, /docs (Swagger UI from the installed package, pointed at
    /openapi.json itself) and /redoc."""
    page, static_dir = _swagger_page(app)

    async def swagger_ui(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/redoc", redoc)
    app.router.add_get("/docs", swagger_ui)
    app.router.add_get("/docs/", swagger_ui)
    app.router.add_static("/docs/static", static_dir)
