"""Berth's client of one Docker engine's HTTP API, on asyncio streams (no aiohttp: every service that talks
to an engine keeps its memory small).

:class:`EngineApi` sends any method with a JSON body, raw bytes, or a body streamed from an iterator (an
image to load or import, a build context, an archive) and answers whole (:meth:`~EngineApi.request`,
:meth:`~EngineApi.json`) or as a stream read while it arrives (:meth:`~EngineApi.stream`: progress lines,
logs frames, an image saved, events). :meth:`~EngineApi.attach` opens the hijacked connection of an exec or
an attach (stdin written and half-closed, the output read frame by frame).

Connections come from the connection factory (a unix socket, a remote server's socket forwarded over SSH, or
TCP) and are kept alive between requests. A request that meets a kept connection the engine closed while it
was idle is sent again on a new connection only when it is idempotent and its body can be sent twice. The
engine not answering (no socket, refused, dropped, too slow to connect) is
:class:`~berth_common.docker.engine.DockerUnavailable`; an error status is :class:`~.wire.EngineError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

from berth_common.docker import wire
from berth_common.docker.engine import DockerUnavailable
from berth_common.docker.wire import Attached, Body, EngineError, Response

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Connect = Callable[[], Awaitable[Stream]]
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
CONNECT_TIMEOUT_S = 30.0
DEFAULT_TIMEOUT_S = 300.0
DEFAULT = -1.0  # a request's timeout: the client's own
_DROPPED = (ConnectionError, asyncio.IncompleteReadError, OSError)

__all__ = ["Attached", "EngineApi", "EngineError", "Response"]


class EngineApi:
    """Requests to one engine over kept-alive connections made by ``connect``, pinned to ``api_version``."""

    def __init__(
        self,
        connect: Connect,
        *,
        api_version: str,
        host_header: str = "docker",
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        max_idle: int = 8,
        user_agent: str = "berth",
    ) -> None:
        self._connect_raw = connect
        self.api_version = api_version
        self.host_header = host_header
        self.timeout_s = timeout_s
        self.max_idle = max_idle
        self.user_agent = user_agent
        self._idle: list[Stream] = []

    # --- connections ---------------------------------------------------------------------------------

    async def _connect(self) -> Stream:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                return await self._connect_raw()
        except TimeoutError:
            raise DockerUnavailable(
                f"the Docker engine did not accept a connection in {CONNECT_TIMEOUT_S:g} s"
            ) from None
        except DockerUnavailable:
            raise
        except OSError as exc:
            raise DockerUnavailable(f"cannot reach the Docker engine: {exc}") from exc

    def _take_idle(self) -> Stream | None:
        while self._idle:
            reader, writer = self._idle.pop()
            if not reader.at_eof() and not writer.is_closing() and not reader._buffer:  # type: ignore[attr-defined]
                return reader, writer
            writer.close()
        return None

    def _give_back(self, conn: Stream) -> None:
        if len(self._idle) < self.max_idle and not conn[1].is_closing():
            self._idle.append(conn)
        else:
            conn[1].close()

    async def close(self) -> None:
        """Close the idle connections (a stream still being read keeps its own until it ends)."""
        while self._idle:
            _, writer = self._idle.pop()
            writer.close()

    # --- requests ------------------------------------------------------------------------------------

    def _head(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        length: int | None,
        versioned: bool,
        extra: Mapping[str, str] | None = None,
    ) -> bytes:
        given = {k.lower(): v for k, v in (headers or {}).items()}
        merged = {
            "User-Agent": self.user_agent,
            **({} if "content-type" in given else {"Content-Type": "application/json"}),
        }
        merged.update(headers or {})
        merged.update(extra or {})
        where = wire.target(self.api_version, path, params, versioned=versioned)
        return wire.head(method, where, self.host_header, merged, length)

    @staticmethod
    def _payload(body: Any, data: Body) -> tuple[bytes | None, AsyncIterable[bytes] | Iterable[bytes] | None]:
        """(whole bytes, or None) and (an iterator to stream, or None)."""
        if body is not None:
            return json.dumps(body).encode(), None
        if data is None:
            return b"", None
        if isinstance(data, str):
            return data.encode(), None
        if isinstance(data, bytes | bytearray | memoryview):
            return bytes(data), None
        return None, data

    async def _send(self, conn: Stream, method: str, head: bytes, whole: bytes | None, stream: Any) -> Response:
        reader, writer = conn
        writer.write(head + (whole or b""))
        try:
            await writer.drain()
            if stream is not None:
                await wire.write_body(writer, stream)
        except ConnectionError:
            pass  # the engine answered before it read the whole body (a refusal): its answer is read below
        status, headers = await wire.read_head(reader)
        while status == 100:
            status, headers = await wire.read_head(reader)
        return Response(status, headers, reader, method)

    async def _open(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        body: Any,
        data: Body,
        headers: Mapping[str, str] | None,
        versioned: bool,
    ) -> tuple[Stream, Response]:
        """Send the request; (the connection, the answer with its head read). Error statuses are the caller's."""
        whole, stream = self._payload(body, data)
        head = self._head(method, path, params, headers, None if whole is None else len(whole), versioned)
        retry = method in IDEMPOTENT and stream is None
        reused = self._take_idle() if stream is None else None  # a body that cannot be sent twice: a new one
        conn = reused or await self._connect()
        try:
            return conn, await self._send(conn, method, head, whole, stream)
        except TimeoutError:
            conn[1].close()
            raise
        except _DROPPED as exc:
            conn[1].close()
            if reused is None or not retry:
                raise DockerUnavailable(f"the Docker engine dropped the connection: {exc}") from exc
        except BaseException:
            conn[1].close()
            raise
        conn = await self._connect()  # a kept connection closed while idle: once more, on a new one
        try:
            return conn, await self._send(conn, method, head, whole, stream)
        except TimeoutError:
            conn[1].close()
            raise
        except _DROPPED as exc:
            conn[1].close()
            raise DockerUnavailable(f"the Docker engine dropped the connection: {exc}") from exc
        except BaseException:
            conn[1].close()
            raise

    def _release(self, conn: Stream, response: Response) -> None:
        if response.done and response.keep_alive:
            self._give_back(conn)
        else:
            conn[1].close()

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        data: Body = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        versioned: bool = True,
    ) -> AsyncIterator[Response]:
        """The answer with its head read, its body for the caller to read (no time limit on it; ``timeout``
        bounds the wait for the head). An error status raises :class:`EngineError` with the engine's message.
        The connection is kept for another request only when the body was read to its end."""
        async with asyncio.timeout(timeout):
            conn, response = await self._open(
                method, path, params=params, body=body, data=data, headers=headers, versioned=versioned
            )
            if response.status >= 400:
                try:
                    error = wire.error_of(response.status, await response.body())
                finally:
                    self._release(conn, response)
                raise error
        try:
            yield response
        finally:
            self._release(conn, response)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        data: Body = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = DEFAULT,
        versioned: bool = True,
    ) -> tuple[int, bytes]:
        """(status, whole body) of a 2xx or 3xx answer within ``timeout`` seconds (``DEFAULT``: the client's
        own limit; None: none); an error status raises :class:`EngineError`, a dropped connection
        :class:`DockerUnavailable`, the time running out TimeoutError."""
        async with asyncio.timeout(self.timeout_s if timeout == DEFAULT else timeout):
            async with self.stream(
                method, path, params=params, body=body, data=data, headers=headers, versioned=versioned
            ) as response:
                return response.status, await response.body()

    async def json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        data: Body = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = DEFAULT,
        versioned: bool = True,
    ) -> Any:
        """The answer's JSON (None for an empty body); errors as :meth:`request`."""
        _, raw = await self.request(
            method, path, params=params, body=body, data=data, headers=headers, timeout=timeout, versioned=versioned
        )
        return json.loads(raw) if raw.strip() else None

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """``GET`` and its JSON."""
        return await self.json("GET", path, params=params)

    async def attach(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        timeout: float | None = 60.0,
    ) -> Attached:
        """The hijacked connection of ``POST /exec/{id}/start`` or ``POST /containers/{id}/attach`` (its own
        connection, never reused); an error status raises :class:`EngineError`."""
        whole = b"" if body is None else json.dumps(body).encode()
        extra = {"Connection": "Upgrade", "Upgrade": "tcp"}
        head = self._head(method, path, params, None, len(whole), True, extra)
        async with asyncio.timeout(timeout):
            reader, writer = await self._connect()
            try:
                response = await self._send((reader, writer), method, head, whole, None)
                if response.status >= 400:
                    raise wire.error_of(response.status, await response.body())
            except TimeoutError:
                writer.close()
                raise
            except _DROPPED as exc:
                writer.close()
                raise DockerUnavailable(f"the Docker engine dropped the connection: {exc}") from exc
            except BaseException:
                writer.close()
                raise
        return Attached(reader, writer)

    @classmethod
    def on_unix(cls, path: str, api_version: str, *, timeout_s: float | None = DEFAULT_TIMEOUT_S) -> EngineApi:
        """A client of the engine at the unix socket ``path`` (a caller outside the connection factory: a
        socket forwarded for one delivery, a Swarm node's)."""

        async def connect() -> Stream:
            return await asyncio.open_unix_connection(path, limit=1 << 20)

        return cls(connect, api_version=api_version, timeout_s=timeout_s)

    async def __aenter__(self) -> EngineApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- aiodocker's spelling of the raw calls, so code written against either client runs on this one -----

    @contextlib.asynccontextmanager
    async def _query(
        self,
        path: str,
        method: str = "GET",
        *,
        params: Mapping[str, Any] | None = None,
        data: Body = None,
        headers: Mapping[str, str] | None = None,
        timeout: Any = None,
        versioned_api: bool = True,
        **_: Any,
    ) -> AsyncIterator[_CompatResponse]:
        limit = timeout if isinstance(timeout, int | float) and not isinstance(timeout, bool) else None
        async with self.stream(
            method, path, params=params, data=data, headers=headers, timeout=limit, versioned=versioned_api
        ) as response:
            yield _CompatResponse(response)

    async def _query_json(
        self,
        path: str,
        method: str = "GET",
        *,
        params: Mapping[str, Any] | None = None,
        data: Body = None,
        headers: Mapping[str, str] | None = None,
        timeout: Any = None,
        versioned_api: bool = True,
        **_: Any,
    ) -> Any:
        async with self._query(
            path, method, params=params, data=data, headers=headers, timeout=timeout, versioned_api=versioned_api
        ) as response:
            return await response.json()


class _CompatResponse:
    """An answer read the way aiohttp's response is (``status``, ``read``, ``text``, ``json``, ``content``)."""

    def __init__(self, response: Response) -> None:
        self._response = response
        self.status = response.status
        self.headers = response.headers
        self.content = _Content(response)

    async def read(self) -> bytes:
        return await self._response.body()

    async def text(self) -> str:
        return (await self._response.body()).decode("utf-8", "replace")

    async def json(self) -> Any:
        return await self._response.json()


class _Content:
    def __init__(self, response: Response) -> None:
        self._response = response

    def iter_any(self) -> AsyncIterator[bytes]:
        return self._response.chunks()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for line in self._response.lines():
            yield line + b"\n"
