"""What every page's forms share: a field's value, and a form whose REST problem is shown on the page it came
from (``call`` makes the REST call, ``Shown`` carries that page out of a handler, ``form`` answers with it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from berth_api.dashboard.client import Api, ApiError
from berth_api.dashboard.web import Handler, page

Redraw = Callable[[Api, dict[str, Any], int, ApiError], Awaitable[Response]]


def shown_status(e: ApiError) -> int:
    """The status of a page showing a REST problem: a refusal stays a refusal (403, 404); a problem with the
    input is a page to correct (200)."""
    return e.status if e.status in (403, 404) else 200


def around(draw: Callable[..., Awaitable[Response]], *args: Any, **extra: Any) -> Redraw:
    """The redraw of a page drawn as ``draw(api, base, *args, status, error=problem, **extra)``."""

    async def redraw(api: Api, base: dict[str, Any], status: int, error: ApiError) -> Response:
        return await draw(api, base, *args, status, error=error, **extra)

    return redraw


def text(base: dict[str, Any], name: str) -> str:
    """A form field, trimmed ("" when absent)."""
    return str(base["form"].get(name) or "").strip()


class Shown(Exception):
    """A page to answer instead (the form's page, with the REST API's problem on it)."""

    def __init__(self, response: Response) -> None:
        self.response = response


async def call(api: Api, base: dict[str, Any], redraw: Redraw, method: str, path: str, **kw: Any) -> Any:
    """One REST call for a form; its problem raises ``Shown`` with the page redrawn around it."""
    try:
        return await api.call(method, path, **kw)
    except ApiError as e:
        raise Shown(await redraw(api, base, shown_status(e), e)) from None


def form(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A signed-in form handler (``web.page``) that may answer with a ``Shown`` page."""

    async def run(request: Request, api: Api, base: dict[str, Any]) -> Response:
        try:
            return await handler(request, api, base)
        except Shown as shown:
            return shown.response

    return page(run)
