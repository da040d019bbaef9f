"""CSRF protection on every form. Signed in: the per-session secret (``ui_sessions.csrf``) travels in a
hidden field and must come back with the POST. Before sign-in (the token and invitation forms): a
double-submit cookie, the same random value in an HttpOnly cookie and in the form. A POST without the
right value is refused with 403, whatever else it carries."""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import Response

from berth_api.dashboard.sessions import Session, is_https, same

FIELD = "csrf"
PRE_COOKIE = "berth_csrf"


def pre_session_value(request: Request) -> str:
    """The double-submit value for a sign-in form: the cookie's, or a new one (set by ``keep``)."""
    return request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)


def keep(response: Response, request: Request, value: str) -> None:
    response.set_cookie(PRE_COOKIE, value, path="/ui/", httponly=True, samesite="strict", secure=is_https(request))


def valid(form_value: object, request: Request, session: Session | None) -> bool:
    if not isinstance(form_value, str) or not form_value:
        return False
    if session is not None:
        return same(form_value, session.csrf)
    cookie = request.cookies.get(PRE_COOKIE)
    return cookie is not None and same(form_value, cookie)
