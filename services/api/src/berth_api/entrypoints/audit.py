"""The audit log: every mutating request (POST, PUT, PATCH, DELETE) an authenticated caller makes leaves one
row: who (user, token), team, action (method + route template), target id, time, outcome (status), the
caller's address and the top-level field names of an accepted JSON body. Never a body, a value or a query.

The row is written right after the request's own transaction, before the response leaves (a client that
got its answer finds the row). Reads pass through untouched; a route that must audit a read (an export
that reveals secret values) calls ``record_read``. Requests without a valid token are not attributable to
a team: they are logged (and rate-limited) but not stored here, except where a route names the team
(``ACTOR``), as a webhook delivery does, with labels (``FIELDS``) in place of body field names.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from berth_api.adapters import audit as repo
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError
from berth_api.entrypoints.auth import client_address
from berth_api.entrypoints.state import ApiState, api_state
from berth_common.logging import get_logger

log = get_logger(__name__)

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ACTOR = "audit_actor"  # request.state.audit_actor = {user_id, team_id, token_id}: who, for anonymous routes
TARGET = "audit_target"  # request.state.audit_target = id: what, when the path does not say
TEAM = "audit_team"  # request.state.audit_team = id: the team whose log the row goes in, if not the token's
FIELDS = "audit_fields"  # request.state.audit_fields = [labels]: what the row says instead of body field names
MAX_BODY = 256 * 1024  # larger bodies are not parsed for field names
MAX_FIELDS = 50
_FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _json_response(message: Message) -> bool:
    for name, value in message.get("headers", []):
        if name == b"content-type":
            return b"json" in value
    return False


def _created_id(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and len(value) <= 64 else None


def _field_names(chunks: list[bytes] | None) -> list[str] | None:
    if not chunks:
        return None
    try:
        data = json.loads(b"".join(chunks))
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    return sorted(k for k in data if isinstance(k, str) and _FIELD_RE.fullmatch(k))[:MAX_FIELDS]


class AuditMiddleware:
    def __init__(self, app: ASGIApp, api: ApiState) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING:
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        chunks: list[bytes] | None = []
        size = 0
        held: Message | None = None
        held_body: list[bytes] = []
        done = False

        async def tee() -> Message:
            nonlocal chunks, size
            message = await receive()
            if chunks is not None and message["type"] == "http.request":
                body = message.get("body", b"")
                size += len(body)
                if size > MAX_BODY:
                    chunks = None
                else:
                    chunks.append(body)
            return message

        async def audited_send(message: Message) -> None:
            nonlocal held, done
            if done:
                await send(message)
                return
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if status in (201, 202) and _json_response(message):
                    held = message  # the created resource's id is in the body
                    return
                done = True
                await write_row(self.api, scope, state, status, None, _field_names(chunks) if status < 400 else None)
                await send(message)
                return
            if message["type"] == "http.response.body" and held is not None:
                held_body.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = b"".join(held_body)
                done = True
                status = int(held["status"])
                await write_row(self.api, scope, state, status, _created_id(body), _field_names(chunks))
                await send(held)
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        try:
            await self.app(scope, tee, audited_send)
        except Exception:
            if not done:
                await write_row(self.api, scope, state, 500, None, None)
            raise


async def record_read(request: Request, fields: list[str]) -> None:
    """Audit a read that a route must account for (it answers 200 right after); fails closed: 503 if the
    row cannot be written."""
    if not await write_row(api_state(request), request.scope, request.scope.setdefault("state", {}), 200, None, fields):
        raise ProblemError(503, "The audit log cannot be written right now; secret values are not revealed without it.")


async def write_row(
    api: ApiState, scope: Scope, state: dict[str, Any], status: int, created: str | None, fields: list[str] | None
) -> bool:
    """One audit row for the request of ``scope`` (nothing without a principal or an actor to name); whether
    it was written."""
    principal = state.get("principal")
    actor: dict[str, Any] | None = state.get(ACTOR)
    who: dict[str, Any]
    if isinstance(principal, Principal):
        who = {"team_id": principal.team_id, "user_id": principal.user_id, "token_id": principal.token_id}
    elif actor is not None:
        who = {k: actor.get(k) for k in ("team_id", "user_id", "token_id")}
    else:
        return False
    if state.get(TEAM):
        who["team_id"] = state[TEAM]
    ctx = api.ctx
    if ctx is None or not who["team_id"]:
        return False
    params: dict[str, Any] = scope.get("path_params") or {}
    target = state.get(TARGET) or created or (str(list(params.values())[-1])[:64] if params else None)
    if state.get(FIELDS) is not None:
        fields = list(state[FIELDS])[:MAX_FIELDS]
    values = {
        **who,
        "method": scope["method"],
        "route": getattr(scope.get("route"), "path", "unmatched")[:300],
        "target_id": target,
        "status": status,
        "fields": fields,
        "source": client_address(Request(scope), api.settings)[:64],
    }
    try:
        await repo.insert_now(ctx.engine, values)
    except Exception as exc:  # the change itself is done; say loudly that its record is missing
        log.error("audit row not written", method=values["method"], route=values["route"], error=str(exc)[:300])
        return False
    return True
