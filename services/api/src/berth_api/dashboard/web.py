"""What every dashboard route shares: the api's state, the session, the in-process REST client, the
templates, CSRF checks on POST, and how an API problem becomes a page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from berth_api.dashboard import csrf, sessions
from berth_api.dashboard.client import Api, ApiError
from berth_api.dashboard.keys import API_APP
from berth_api.entrypoints.state import ApiState

HERE = Path(__file__).parent
templates = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]), enable_async=False
)
ACTIVE = frozenset({"queued", "building", "starting", "verifying", "routing", "draining", "stopping_old"})
templates.globals["ACTIVE"] = ACTIVE


MAX_FORM = 256 * 1024


async def form_of(request: Request) -> dict[str, str]:
    """The fields of an ``application/x-www-form-urlencoded`` POST (every form here is one; the first value
    of a repeated name)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return {}
    body = await request.body()
    if len(body) > MAX_FORM:
        return {}
    fields: dict[str, str] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        fields.setdefault(name, value)
    return fields


def state_of(request: Request) -> ApiState:
    state: ApiState = request.scope[API_APP].state.api
    return state


def api_for(request: Request, session: sessions.Session | None) -> Api:
    return Api(request.scope[API_APP], request, session.token if session else None)


def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = templates.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def signin_redirect() -> Response:
    return RedirectResponse("/ui/signin", status_code=303)


Handler = Callable[[Request, Api, dict[str, Any]], Awaitable[Response]]


def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A signed-in page: the session (else the sign-in page), who it is (``me``), the REST client; a 401
    from the API (token revoked or expired) signs the person out."""

    async def endpoint(request: Request) -> Response:
        session = await sessions.load(state_of(request), request)
        if session is None:
            return signin_redirect()
        api = api_for(request, session)
        try:
            me = await api.get("/v1/me")
            base = {"me": me, "csrf_token": session.csrf, "request": request, "can": can(me["role"])}
            request.state.session = session  # for a form that changes the session's own token (a team switch)
            if request.method == "POST":
                form = await form_of(request)
                if not csrf.valid(form.get(csrf.FIELD), request, session):
                    return render(
                        "error.html", 403, **base, error="This form has expired or was not sent by this page."
                    )
                base["form"] = form
            return await handler(request, api, base)
        except ApiError as e:
            if e.status == 401:
                return signin_redirect()
            return render("error.html", e.status if e.status >= 400 else 400, error=e.detail, csrf_token=session.csrf)
        finally:
            await api.close()

    return endpoint


def can(role: str) -> dict[str, bool]:
    """What the page offers a role (the REST API refuses the rest anyway)."""
    rank = {"viewer": 0, "developer": 1, "admin": 2, "owner": 3}.get(role, 0)
    return {"write": rank >= 1, "admin": rank >= 2}


def back_to(url: str) -> Response:
    return RedirectResponse(url, status_code=303)
