"""Sign-in sessions: a random key in an HttpOnly cookie, the row found by the key's hash, the API token
sealed in the row (never in a URL, a page or the browser's storage). Signing out deletes the row."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response

from berth_api.adapters.sealed import hold_for_sealing
from berth_api.adapters.secretbox import SecretUnavailableError
from berth_api.adapters.ui_tables import session_aad, ui_sessions
from berth_api.dashboard.keys import API_APP
from berth_api.entrypoints.auth import client_scheme
from berth_api.entrypoints.state import ApiState

COOKIE = "berth_session"
LIFETIME = timedelta(hours=12)


@dataclass(frozen=True)
class Session:
    """A signed-in person: the row's id, the opened token and the per-session CSRF secret."""

    id: str
    token: str
    csrf: str
    label: str


def _row_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def is_https(request: Request) -> bool:
    """Whether the browser reached us over HTTPS (directly or through a trusted proxy, which says so)."""
    state: ApiState = request.scope[API_APP].state.api  # the dashboard's request.app is its own mount
    return client_scheme(request, state.settings) == "https"


async def create(state: ApiState, token: str, label: str) -> tuple[str, Session]:
    """A new session for ``token``: (the cookie's key, the session). Sealed under the key lock, so a key
    rotation re-seals it or waits for it (``adapters.sealed``)."""
    key = secrets.token_urlsafe(32)
    row_id, csrf = _row_id(key), secrets.token_urlsafe(32)
    box = state.deps().box
    now = datetime.now(UTC)
    async with state.context().sessionmaker() as s, s.begin():
        await hold_for_sealing(s, box)
        sealed = box.seal(token, session_aad(row_id))
        await s.execute(ui_sessions.delete().where(ui_sessions.c.expires_at < now))
        await s.execute(
            ui_sessions.insert().values(
                id=row_id, sealed_token=sealed, csrf=csrf, label=label[:200], expires_at=now + LIFETIME
            )
        )
    return key, Session(row_id, token, csrf, label)


async def load(state: ApiState, request: Request) -> Session | None:
    """The session the request's cookie names, if it exists and has not expired."""
    key = request.cookies.get(COOKIE)
    if not key or len(key) > 100:
        return None
    row_id = _row_id(key)
    async with state.context().sessionmaker() as s:
        row = (await s.execute(sa.select(ui_sessions).where(ui_sessions.c.id == row_id))).mappings().one_or_none()
    if row is None or row["expires_at"] < datetime.now(UTC):
        return None
    try:
        token = state.deps().box.open(row["sealed_token"], session_aad(row_id))
    except SecretUnavailableError:  # sealed with a key this api no longer has: signed out
        return None
    return Session(row_id, token, row["csrf"], row["label"])


async def delete(state: ApiState, session: Session) -> None:
    async with state.context().sessionmaker() as s, s.begin():
        await s.execute(ui_sessions.delete().where(ui_sessions.c.id == session.id))


def set_cookie(response: Response, request: Request, key: str) -> None:
    response.set_cookie(
        COOKIE,
        key,
        max_age=int(LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=is_https(request),
    )


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=is_https(request))


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


async def replace_token(state: ApiState, session: Session, token: str, label: str) -> Session:
    """The same session (cookie, CSRF secret) acting with another token: a switch of team. Sealed under the
    key lock, as ``create``."""
    box = state.deps().box
    async with state.context().sessionmaker() as s, s.begin():
        await hold_for_sealing(s, box)
        sealed = box.seal(token, session_aad(session.id))
        await s.execute(
            ui_sessions.update().where(ui_sessions.c.id == session.id).values(sealed_token=sealed, label=label[:200])
        )
    return Session(session.id, token, session.csrf, label)
