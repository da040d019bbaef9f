"""The REST API called in-process with the session's token: the same routes, authorization and validation
the CLI meets (``httpx.AsyncClient`` over ``ASGITransport`` on the running app), plus ``stream`` for the
Server-Sent Events routes (the transport buffers whole bodies, so a live stream is read from the app
directly)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from starlette.requests import Request
from starlette.types import ASGIApp, Message


@dataclass
class ApiError(Exception):
    """A problem+json answer: its status, ``detail`` and the field errors it names."""

    status: int
    detail: str
    fields: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.detail


def _problem(r: httpx.Response) -> ApiError:
    try:
        body = r.json()
    except ValueError:
        return ApiError(r.status_code, r.text[:300] or r.reason_phrase)
    detail = str(body.get("detail") or body.get("title") or r.reason_phrase) if isinstance(body, dict) else str(body)
    fields: dict[str, str] = {}
    for err in (body.get("errors") or []) if isinstance(body, dict) else []:
        if isinstance(err, dict):
            loc = str(err.get("loc", ""))  # a JSON pointer: /body/services/0/port
            name = loc.removeprefix("/body").strip("/").replace("/", ".") or "request"
            fields[name] = str(err.get("detail") or "invalid")
    return ApiError(r.status_code, detail, fields)


class Api:
    """One request's REST client, as the signed-in person (or anonymous, for sign-in itself)."""

    def __init__(self, app: ASGIApp, request: Request, token: str | None) -> None:
        self.app = app
        self.token = token
        host = request.client.host if request.client else "127.0.0.1"
        port = request.client.port if request.client else 0
        self.client_addr = (host, port)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        transport = httpx.ASGITransport(app=app, client=self.client_addr)
        self.http = httpx.AsyncClient(transport=transport, base_url="http://berth.internal", headers=headers)

    async def close(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, **kw: Any) -> Any:
        """The JSON answer of a 2xx, else an ``ApiError`` with the problem's detail."""
        r = await self.http.request(method, path, **kw)
        if r.status_code >= 400:
            raise _problem(r)
        if r.status_code == 204 or not r.content:
            return None
        return r.json()

    async def get(self, path: str, **kw: Any) -> Any:
        return await self.call("GET", path, **kw)

    async def page(self, path: str, **kw: Any) -> tuple[Any, dict[str, str]]:
        """A listing's page (GET, as ``call``) and the query of the next one, from its ``Link: <...>;
        rel="next"`` header (empty on the last page)."""
        r = await self.http.get(path, **kw)
        if r.status_code >= 400:
            raise _problem(r)
        following = r.links.get("next", {}).get("url", "")
        return r.json(), dict(parse_qsl(urlsplit(following).query))

    async def maybe(self, path: str, default: Any = None, **kw: Any) -> Any:
        """GET, or ``default`` when the API refuses or lacks it (a part of a page that may be empty)."""
        try:
            return await self.get(path, **kw)
        except ApiError:
            return default

    async def stream(self, path: str, last_event_id: str = "") -> AsyncIterator[bytes]:
        """The body of a streaming GET (``text/event-stream``) as the app sends it, chunk by chunk."""
        queue: asyncio.Queue[Message | None] = asyncio.Queue()
        disconnected = asyncio.Event()
        raw_path, _, query = path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": raw_path,
            "raw_path": raw_path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [
                (b"host", b"berth.internal"),
                (b"accept", b"text/event-stream"),
                *([(b"authorization", f"Bearer {self.token}".encode())] if self.token else []),
                *([(b"last-event-id", last_event_id.encode())] if last_event_id else []),
            ],
            "client": self.client_addr,
            "server": ("berth.internal", 80),
        }

        async def receive() -> Message:
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            await queue.put(message)

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            finally:
                await queue.put(None)

        task = asyncio.create_task(run())
        try:
            first = await queue.get()
            if first is None or first.get("status", 500) >= 400:
                return
            while (message := await queue.get()) is not None:
                body = message.get("body", b"")
                if body:
                    yield body
                if not message.get("more_body", False):
                    return
        finally:
            disconnected.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def items(got: Any) -> list[dict[str, Any]]:
    """A listing's rows, whether the REST API answered a list or a page (``{"items": [...]}``)."""
    rows = got.get("items", []) if isinstance(got, dict) else got
    return list(rows or [])
