"""What the catalogue, notification and team pages' forms share: a field's value, a listing's rows, and a
form whose REST problem is shown on the page it came from (``Shown`` carries that page out of a handler)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from berth_api.dashboard.client import Api, ApiError
from berth_api.dashboard.pages import shown_status
from berth_api.dashboard.web import Handler, page

Redraw = Callable[[Api, dict[str, Any], int, ApiError], Awaitable[Response]]


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
