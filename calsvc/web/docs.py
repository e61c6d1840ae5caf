"""The OpenAPI document, Swagger UI (served offline from swagger-ui-py), ReDoc (its script
served offline from drf-spectacular-sidecar), and `/` sending a browser to the docs."""

from __future__ import annotations

import html
import importlib.util
from pathlib import Path

from aiohttp import web
from swagger_ui.core import ApplicationDocument

from calsvc.web import keys

_REDOC = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>calsvc API reference</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><redoc spec-url="/openapi.json"></redoc><script src="{script}"></script></body></html>
"""
REDOC_STATIC = "/redoc/static"
REDOC_PACKAGE = "drf_spectacular_sidecar"  # ReDoc's standalone bundle, as its releases publish it


def redoc_bundle_dir() -> Path:
    """The folder of ReDoc's standalone script in the installed drf-spectacular-sidecar. Found
    without importing the package (its __init__ imports Django, which calsvc never needs)."""
    spec = importlib.util.find_spec(REDOC_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("drf-spectacular-sidecar is not installed: it carries the script of /redoc")
    folder = Path(next(iter(spec.submodule_search_locations))) / "static" / REDOC_PACKAGE / "redoc" / "bundles"
    if not (folder / "redoc.standalone.js").is_file():
        raise RuntimeError(f"{folder} holds no redoc.standalone.js")
    return folder


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[keys.OPENAPI])


async def redoc(request: web.Request) -> web.Response:
    configured = request.app[keys.SETTINGS].server.redoc_script_url
    script = html.escape(configured or f"{REDOC_STATIC}/redoc.standalone.js", quote=True)
    return web.Response(text=_REDOC.format(script=script), content_type="text/html")


async def home(request: web.Request) -> web.Response:
    """There is no page of its own at `/`: a person who opens the service lands on the docs."""
    raise web.HTTPFound("/docs")


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
    /openapi.json itself), /redoc (its script from another installed package, unless
    server.redoc_script_url names one) and / (a redirect to /docs)."""
    page, static_dir = _swagger_page(app)

    async def swagger_ui(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app.router.add_get("/", home)
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/redoc", redoc)
    app.router.add_static(REDOC_STATIC, redoc_bundle_dir())
    app.router.add_get("/docs", swagger_ui)
    app.router.add_get("/docs/", swagger_ui)
    app.router.add_static("/docs/static", static_dir)
