"""The dashboard's place in the api: ``/ui`` mounted on an app built at the first request, and ``/`` sending
a browser there. Importing this module costs nothing; ``berth_api.dashboard.app`` (Jinja2, the templates,
the pages) loads only when someone opens the dashboard."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from berth_api.dashboard.keys import API_APP


class LazyDashboard:
    """An ASGI app that builds the dashboard on first use and hands it the api app it serves."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            from berth_api.dashboard.app import build

            self.app = build()
        scope.setdefault(API_APP, scope.get("app"))
        await self.app(scope, receive, send)


async def _home(request: Request) -> Response:
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse("/ui/", status_code=303)
    raise HTTPException(404)  # not a browser: the api's usual problem+json


def routes() -> list[BaseRoute]:
    return [Route("/", _home, methods=["GET"]), Mount("/ui", app=LazyDashboard())]
