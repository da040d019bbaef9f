"""A BuildKit session that serves secrets to ``RUN --mount=type=secret,id=NAME`` (Engine API ``/session``).

The client opens ``POST /session`` with ``Upgrade: h2c``; after ``101 Switching Protocols`` the daemon
speaks gRPC (HTTP/2) to us over that connection. We answer two unary methods:
``/moby.buildkit.secrets.v1.Secrets/GetSecret`` (``GetSecretRequest{ID=1}`` -> ``GetSecretResponse{data=1}``)
``/grpc.health.v1.Health/Check`` (``SERVING``) and, with registry credentials given,
``/moby.filesync.v1.Auth/Credentials`` (``CredentialsRequest{Host=1}`` -> ``CredentialsResponse{Username=1,
Secret=2}``: the team's credentials for a mirror a ``FROM`` base is pulled from); anything else gets
``UNIMPLEMENTED`` (BuildKit then falls back from token authorities to plain credentials). A secret's value
travels only over this socket into a tmpfs mount of the one RUN step that asks for it: it is not a build
arg, so it is in no layer and not in the image history.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets as pysecrets
import struct
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from berth_builder.domain.progress import fields
from berth_common.docker import DockerEngines
from berth_common.logging import get_logger
from berth_common.registries import credentials_for

log = get_logger(__name__)

GET_SECRET = "/moby.buildkit.secrets.v1.Secrets/GetSecret"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
CREDENTIALS = "/moby.filesync.v1.Auth/Credentials"
GRPC_OK, GRPC_NOT_FOUND, GRPC_UNIMPLEMENTED = "0", "5", "12"


class SessionError(RuntimeError):
    pass


@dataclass(frozen=True)
class _Host:
    registry: str
    user: str
    password: str = field(repr=False)


def _encode_bytes_field(number: int, data: bytes) -> bytes:
    out = bytearray([(number << 3) | 2])
    n = len(data)
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            break
    return bytes(out) + data


def _string_field(request: bytes, number: int) -> str:
    for n, value in fields(request):
        if n == number and isinstance(value, bytes):
            return value.decode(errors="replace")
    return ""


def answer(
    path: str,
    request: bytes,
    secrets: Mapping[str, str],
    registries: Mapping[str, tuple[str, str]] | None = None,
) -> tuple[str, bytes | None, str]:
    """(grpc-status, reply message or None, grpc-message) for one unary call: the pure part of the server.
    ``registries``: registry host -> (user, password); a host without credentials gets an empty answer
    (an anonymous pull)."""
    if path == HEALTH_CHECK:
        return GRPC_OK, b"\x08\x01", ""
    if path == CREDENTIALS and registries is not None:
        found = credentials_for(_string_field(request, 1), [_Host(h, *c) for h, c in registries.items()])
        if found is None:
            return GRPC_OK, b"", ""
        return (
            GRPC_OK,
            _encode_bytes_field(1, found.user.encode()) + _encode_bytes_field(2, found.password.encode()),
            "",
        )
    if path == GET_SECRET:
        ident = ""
        for number, value in fields(request):
            if number == 1 and isinstance(value, bytes):
                ident = value.decode(errors="replace")
        if ident in secrets:
            return GRPC_OK, _encode_bytes_field(1, secrets[ident].encode()), ""
        return GRPC_NOT_FOUND, None, f"secret {ident[:100]} not provided"
    return GRPC_UNIMPLEMENTED, None, "method not implemented"


class SecretSession:
    """``async with SecretSession(engines, server_id, secrets) as s:`` then build with ``session=s.id``."""

    def __init__(
        self,
        engines: DockerEngines,
        server_id: str,
        secrets: Mapping[str, str],
        registries: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        self.engines = engines
        self.server_id = server_id
        self.secrets = dict(secrets)
        self.registries = dict(registries) if registries is not None else None
        self.id = pysecrets.token_hex(16)
        self.served: list[str] = []  # secret ids asked for (names only)
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> SecretSession:
        engine = self.engines.engine(self.server_id)
        reader, writer = await self.engines.open_stream(self.server_id)
        self._writer = writer
        head = (
            f"POST /{engine.api_version}/session HTTP/1.1\r\n"
            f"Host: {engine.where.host_header}\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nContent-Length: 0\r\n"
            f"X-Docker-Expose-Session-Uuid: {self.id}\r\n"
            "X-Docker-Expose-Session-Name: berth-builder\r\n"
            f"X-Docker-Expose-Session-Sharedkey: {self.id}\r\n"
            f"X-Docker-Expose-Session-Grpc-Method: {GET_SECRET}\r\n"
            f"X-Docker-Expose-Session-Grpc-Method: {HEALTH_CHECK}\r\n"
            + (f"X-Docker-Expose-Session-Grpc-Method: {CREDENTIALS}\r\n" if self.registries is not None else "")
            + "\r\n"
        )
        writer.write(head.encode())
        await writer.drain()
        response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status = response.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            writer.close()
            raise SessionError(f"the Docker engine refused a BuildKit session: {status.decode(errors='replace')}")
        self._task = asyncio.create_task(self._serve(reader, writer), name=f"buildkit-session:{self.id[:8]}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        await writer.drain()
        calls: dict[int, tuple[str, bytearray]] = {}
        while True:
            data = await reader.read(65536)
            if not data:
                return
            try:
                events = conn.receive_data(data)
            except h2.exceptions.ProtocolError as exc:
                log.warning("buildkit session protocol error", error=str(exc))
                return
            for event in events:
                if isinstance(event, h2.events.RequestReceived):
                    headers = {str(k): str(v) for k, v in event.headers}
                    calls[event.stream_id] = (headers.get(":path", ""), bytearray())
                elif isinstance(event, h2.events.DataReceived):
                    if event.stream_id in calls:
                        calls[event.stream_id][1].extend(event.data)
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id in calls:
                    path, body = calls.pop(event.stream_id)
                    self._reply(conn, event.stream_id, path, bytes(body))
                elif isinstance(event, h2.events.StreamReset):
                    calls.pop(event.stream_id, None)
            out = conn.data_to_send()
            if out:
                writer.write(out)
                await writer.drain()

    def _reply(self, conn: h2.connection.H2Connection, stream_id: int, path: str, body: bytes) -> None:
        message = body[5:] if len(body) >= 5 else b""  # gRPC frame: 1 byte compressed flag, 4 bytes length
        status, reply, text = answer(path, message, self.secrets, self.registries)
        if path == GET_SECRET:
            self.served.append(
                next((v.decode(errors="replace") for n, v in fields(message) if n == 1 and isinstance(v, bytes)), "")
            )
        conn.send_headers(stream_id, [(":status", "200"), ("content-type", "application/grpc")])
        if reply is not None:
            conn.send_data(stream_id, b"\x00" + struct.pack(">I", len(reply)) + reply)
        trailers = [("grpc-status", status)]
        if text:
            trailers.append(("grpc-message", urllib.parse.quote(text)))
        conn.send_headers(stream_id, trailers, end_stream=True)
