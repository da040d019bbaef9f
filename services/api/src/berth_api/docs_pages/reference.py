"""The API reference page: Swagger UI over ``/openapi.json``, every file it loads served by the api itself.

Swagger UI's files come from the ``fastapi-offline`` wheel (a pinned dependency that ships them; its Python
code is never imported); the page's own script and style sheet are in ``static/`` beside this module. The
page answers with a Content-Security-Policy that allows only its own origin, so a browser fetches nothing
from anywhere else.
"""

from __future__ import annotations

import importlib.util
from html import escape
from pathlib import Path

from starlette.responses import FileResponse, HTMLResponse

from berth_api.docs_pages import layout
from berth_api.domain.problems import ProblemError

OWN_STATIC = Path(__file__).parent / "static"
# The wheel's files that the page loads, and ours; nothing else is served under /docs/assets.
WHEEL_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")
OWN_FILES = ("reference.js", "pages.css")
ASSET_CACHE = "public, max-age=86400"
_MEDIA = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def wheel_static() -> Path:
    """The directory of Swagger UI's files in the installed ``fastapi-offline`` (found, not imported)."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        raise ProblemError(503, "The API reference's files (the fastapi-offline package) are not installed.")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def page(root: str = "") -> HTMLResponse:
    """The reference page; ``root`` is the path the api is mounted under (ASGI ``root_path``)."""
    r = escape(root)
    main = f"""<main id="swagger-ui" data-openapi-url="{r}/openapi.json"></main>
<noscript><p>The reference needs JavaScript; the document itself is at
<a href="{r}/openapi.json">openapi.json</a>.</p></noscript>"""
    return layout.respond(
        layout.html(
            "Berth API reference",
            root,
            "/docs",
            main,
            stylesheets=("swagger-ui.css",),
            scripts=("swagger-ui-bundle.js", "reference.js"),
        )
    )


def asset(name: str) -> FileResponse:
    """One of the page's files, by name (any other name is 404)."""
    if name in WHEEL_FILES:
        path = wheel_static() / name
    elif name in OWN_FILES:
        path = OWN_STATIC / name
    else:
        raise ProblemError(404, f"No documentation asset {name!r}.")
    media = _MEDIA[path.suffix]
    if media.startswith("text/"):
        media += "; charset=utf-8"
    return FileResponse(path, media_type=media, headers={"Cache-Control": ASSET_CACHE})
