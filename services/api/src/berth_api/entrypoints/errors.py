"""Every error leaves as ``application/problem+json`` (RFC 9457); no stack trace ever reaches a client."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from berth_api.domain.problems import MEDIA_TYPE, ProblemError, field_errors, problem_body
from berth_common.logging import get_logger

log = get_logger(__name__)


class ProblemResponse(JSONResponse):
    media_type = MEDIA_TYPE


def problem_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> ProblemResponse:
    return ProblemResponse(body, status_code=status, headers=headers)


async def _on_problem(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, ProblemError)
    body = problem_body(
        exc.status, exc.detail, type_=exc.type, title=exc.title, instance=request.url.path, errors=exc.errors
    )
    return problem_response(exc.status, body, exc.headers)


async def _on_http(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No resource at {request.url.path}."
    elif exc.status_code == 405 and detail == "Method Not Allowed":
        detail = f"{request.method} is not allowed on {request.url.path}."
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and (allowed := allowed_methods(request)):
        headers["Allow"] = ", ".join(allowed)
    body = problem_body(exc.status_code, detail, instance=request.url.path)
    return problem_response(exc.status_code, body, headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method of every route on the request's path (the router's 405 names only the first route's).

    As in OpenAPI, a concrete path comes before a templated one: on ``/v1/databases/engines`` only the
    routes of that very path count, not those of ``/v1/databases/{database_id}``."""
    scope = {**request.scope, "method": "\0"}  # a method no route has: a route on the path matches partly
    routes = [r for r in request.app.router.routes if isinstance(r, Route) and r.methods]
    on_path = [r for r in routes if r.matches(scope)[0] != Match.NONE]
    concrete = [r for r in on_path if "{" not in r.path]
    found: set[str] = set()
    for route in concrete or on_path:
        found |= route.methods or set()
    return sorted(found)


async def _on_validation(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    errors = field_errors(exc.errors())
    fields = ", ".join(e["loc"] for e in errors[:5])
    body = problem_body(422, f"The request has invalid fields: {fields}.", instance=request.url.path, errors=errors)
    return problem_response(422, body)


# A database that restarts, or a connection it dropped: the request may succeed when sent again.
UNAVAILABLE = (
    asyncpg.exceptions.CannotConnectNowError,  # starting up, not yet accepting connections
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.PostgresConnectionError,
    ConnectionError,  # refused, reset, aborted: nothing listens (yet) or the peer went away
    PoolTimeoutError,  # every pooled connection busy for the pool's timeout (a burst of requests)
)
RETRY_AFTER_S = 2


def unavailable(exc: BaseException) -> BaseException | None:
    """The cause of ``exc`` that means a backing service is unreachable for a moment (the database restarts,
    a connection was cut), found through SQLAlchemy's wrapping and ``raise ... from``; None otherwise."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        cur = todo.pop()
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, UNAVAILABLE) or (isinstance(cur, DBAPIError) and cur.connection_invalidated):
            return cur
        # explicit causes only: an error raised while another was being handled is not caused by it
        todo += [getattr(cur, "orig", None), cur.__cause__]
    return None


async def _on_unhandled(request: Request, exc: Exception) -> ProblemResponse:
    cause = unavailable(exc)
    if cause is not None:  # 503 with Retry-After: a client sends it again instead of reporting a server bug
        log.warning("backing service unavailable", method=request.method, path=request.url.path, error=repr(cause))
        body = problem_body(503, "A service this request needs is busy, restarting or unreachable; try again shortly.")
        return problem_response(503, body, {"Retry-After": str(RETRY_AFTER_S)})
    log.exception("unhandled error", method=request.method, path=request.url.path)
    body = problem_body(500, "The server failed to handle this request; it has been logged.")
    return problem_response(500, body)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(Exception, _on_unhandled)  # ServerErrorMiddleware: the catch-all 500


class BodyTooLargeError(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body exceeds the limit of {limit} bytes.")


class BodyLimitMiddleware:
    """Reject bodies over ``limit`` bytes with 413: at once by Content-Length, else while streaming."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, chunked = _framing(scope)
        if declared is not None and declared > self.limit:
            await self._reject(scope, send)
            return
        if not chunked:  # no body, or one the server delivers only up to its declared length: nothing to watch
            await self.app(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLargeError(self.limit)  # FastAPI re-raises HTTPException from body reading
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLargeError:
            if started:
                raise
            await self._reject(scope, send)

    async def _reject(self, scope: Scope, send: Send) -> None:
        body = problem_body(413, f"The request body exceeds the limit of {self.limit} bytes.", instance=scope["path"])
        raw = json.dumps(body).encode()
        headers = [(b"content-type", MEDIA_TYPE.encode()), (b"content-length", str(len(raw)).encode())]
        headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": raw})


def _framing(scope: Scope) -> tuple[int | None, bool]:
    """The declared Content-Length (None if absent or not a number) and whether the body is chunked (or
    framed any way other than by a valid Content-Length, which the server enforces)."""
    length: int | None = None
    chunked = False
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                chunked = True
        elif name == b"transfer-encoding":
            chunked = True
    return length, chunked


class ConcretePathMiddleware:
    """A method a concrete path has no route for is a 405, as its ``Allow`` and the OpenAPI say, and not
    taken by a templated route that matches the same text (``DELETE /v1/databases/engines`` is no database's
    deletion: without this it reached ``/v1/databases/{database_id}`` and was refused 422)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.concrete: dict[str, set[str]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if self.concrete is None:
                self.concrete = {}
                for route in scope["app"].router.routes:
                    if isinstance(route, Route) and route.methods and "{" not in route.path:
                        self.concrete.setdefault(route.path, set()).update(route.methods)
            allowed = self.concrete.get(scope["path"])
            if allowed and scope["method"] not in allowed and scope["method"] != "OPTIONS":
                detail = f"{scope['method']} is not allowed on {scope['path']}."
                body = problem_body(405, detail, instance=scope["path"])
                await problem_response(405, body, {"Allow": ", ".join(sorted(allowed))})(scope, receive, send)
                return
        await self.app(scope, receive, send)
