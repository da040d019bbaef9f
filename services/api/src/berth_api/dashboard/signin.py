"""Signing in (with an API token, or by accepting an invitation, which makes the first token) and out."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from berth_api.dashboard import csrf, sessions
from berth_api.dashboard.client import ApiError
from berth_api.dashboard.web import api_for, form_of, render, state_of


def _form_page(request: Request, status: int = 200, **context: object) -> Response:
    value = csrf.pre_session_value(request)
    response = render("signin.html", status, csrf_token=value, **context)
    csrf.keep(response, request, value)
    return response


async def show(request: Request) -> Response:
    if await sessions.load(state_of(request), request) is not None:
        return RedirectResponse("/ui/", status_code=303)
    return _form_page(request)


async def _start(request: Request, token: str) -> Response:
    """Check the token with the REST API (``/v1/me``), then open a session for it."""
    api = api_for(request, None)
    api.http.headers["Authorization"] = f"Bearer {token}"
    try:
        me = await api.get("/v1/me")
    except ApiError as e:
        return _form_page(request, error=e.detail)
    finally:
        await api.close()
    key, _ = await sessions.create(state_of(request), token, f"{me['user']['email']} ({me['team']['name']})")
    response = RedirectResponse("/ui/", status_code=303)
    sessions.set_cookie(response, request, key)
    response.delete_cookie(csrf.PRE_COOKIE, path="/ui/")
    return response


async def with_token(request: Request) -> Response:
    form = await form_of(request)
    if not csrf.valid(form.get(csrf.FIELD), request, None):
        return _form_page(request, 403, error="This form has expired; try again.")
    token = str(form.get("token") or "").strip()
    if not token:
        return _form_page(request, error="Paste an API token.", field="token")
    return await _start(request, token)


async def with_invitation(request: Request) -> Response:
    form = await form_of(request)
    if not csrf.valid(form.get(csrf.FIELD), request, None):
        return _form_page(request, 403, error="This form has expired; try again.")
    body: dict[str, object] = {"code": str(form.get("code") or "").strip(), "token_name": "dashboard"}
    if name := str(form.get("name") or "").strip():
        body["name"] = name
    api = api_for(request, None)
    try:
        joined = await api.call("POST", "/v1/invitations/accept", json=body)
    except ApiError as e:
        return _form_page(request, error=e.detail, invitation=True)
    finally:
        await api.close()
    return await _start(request, joined["token"]["token"])


async def signout(request: Request) -> Response:
    state = state_of(request)
    session = await sessions.load(state, request)
    if session is not None:
        form = await form_of(request)
        if not csrf.valid(form.get(csrf.FIELD), request, session):
            return render("error.html", 403, error="This form has expired or was not sent by this page.")
        await sessions.delete(state, session)
    response = RedirectResponse("/ui/signin", status_code=303)
    sessions.clear_cookie(response, request)
    return response
