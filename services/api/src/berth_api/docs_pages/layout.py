"""What the documentation pages share: the HTML around their content, the bar that links them, and the
Content-Security-Policy that lets a browser load nothing from another origin."""

from __future__ import annotations

from html import escape

from starlette.responses import HTMLResponse

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
ASSETS = "/docs/assets"
LINKS = (
    ("/docs", "API reference"),
    ("/events", "Event catalogue"),
    ("/openapi.json", "openapi.json"),
    ("/asyncapi.json", "asyncapi.json"),
)


def html(
    title: str,
    root: str,
    current: str,
    main: str,
    *,
    stylesheets: tuple[str, ...] = (),
    scripts: tuple[str, ...] = (),
) -> str:
    """A whole page: ``main`` (HTML) under the bar, ``current`` its own address among ``LINKS``; ``root`` is
    the path the api is mounted under (ASGI ``root_path``); stylesheets and scripts are names in ``ASSETS``."""
    r = escape(root)
    mark = ' aria-current="page"'
    links = "\n".join(f'<a href="{r}{href}"{mark if href == current else ""}>{text}</a>' for href, text in LINKS)
    css = "".join(f'<link rel="stylesheet" href="{r}{ASSETS}/{name}">\n' for name in (*stylesheets, "pages.css"))
    js = "".join(f'<script src="{r}{ASSETS}/{name}"></script>\n' for name in scripts)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<link rel="icon" type="image/png" href="{r}{ASSETS}/favicon.png">
{css}</head>
<body>
<header class="berth-docs-nav">
<strong>Berth</strong>
<nav aria-label="Documentation">
{links}
</nav>
</header>
{main}
{js}</body>
</html>
"""


def respond(page: str) -> HTMLResponse:
    """A page's answer: never cached stale, and loading nothing from another origin."""
    return HTMLResponse(page, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"})
