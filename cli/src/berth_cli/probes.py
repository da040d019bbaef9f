"""Readiness probes, kept light (no HTTP client library) because the supervisor runs them too."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from berth_cli.components import pg_bin
from berth_cli.layout import Probe


async def http_status(url: str, timeout: float = 3.0) -> int | None:
    """The status code of ``GET url`` (plain HTTP), or None when nothing answers."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"only http:// probes are supported: {url}")
    host, port = parts.hostname, parts.port or 80
    path = parts.path or "/"

    async def get() -> int | None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            line = await reader.readline()
            fields = line.decode("latin-1").split()
            return int(fields[1]) if len(fields) >= 2 and fields[1].isdigit() else None
        finally:
            writer.close()

    try:
        return await asyncio.wait_for(get(), timeout)
    except (OSError, TimeoutError, ValueError):
        return None


async def pg_ready(host: str, port: int, timeout: float = 3.0) -> bool:
    """Postgres accepts connections (pg_isready: no credentials needed)."""
    argv = [str(pg_bin("pg_isready")), "-q", "-h", host, "-p", str(port), "-t", str(max(1, int(timeout)))]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
    except OSError:
        return False
    try:
        return await asyncio.wait_for(proc.wait(), timeout + 2) == 0
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return False


JS_INFO_REPLY = "io.nats.jetstream.api.v1.account_info_response"


async def nats_ready(host: str, port: int, user: str, password: str, timeout: float = 3.0) -> bool:
    """nats-server takes ``user`` with ``password`` and JetStream answers its account information
    (``$JS.API.INFO``): what the unauthenticated monitoring port's ``/healthz`` told, asked as an identity.
    Spoken in NATS' text protocol (no client library in the supervisor); the reply comes to ``user``'s
    inbox, the only one it may read."""
    inbox = f"_INBOX.{user}.probe"
    connect = {"verbose": False, "pedantic": False, "user": user, "pass": password, "name": "berth-probe"}
    connect |= {"lang": "python", "version": "0", "protocol": 1, "headers": True, "no_responders": True}

    async def ask() -> bool:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            if not (await reader.readline()).startswith(b"INFO "):
                return False
            writer.write(f"CONNECT {json.dumps(connect)}\r\nSUB {inbox} 1\r\n".encode())
            writer.write(f"PUB $JS.API.INFO {inbox} 0\r\n\r\n".encode())
            await writer.drain()
            while line := await reader.readline():
                if line.startswith(b"PING"):
                    writer.write(b"PONG\r\n")
                elif line.startswith(b"MSG "):  # a reply without headers: JetStream's answer
                    body = await reader.readexactly(int(line.split()[-1]) + 2)
                    reply = json.loads(body)
                    return reply.get("type") == JS_INFO_REPLY and "error" not in reply
                elif not line.startswith(b"PONG"):  # -ERR (refused), HMSG (no responders: no JetStream)
                    return False
            return False
        finally:
            writer.close()

    try:
        return await asyncio.wait_for(ask(), timeout)
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
        return False


def _read_secret(path: str) -> str | None:
    """A password file's content (a few bytes on a local disk: read in place), None when it is missing."""
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


async def check(probe: Probe, timeout: float = 3.0) -> bool:
    if probe.kind == "pg":
        return await pg_ready(probe.host, probe.port, timeout)
    if probe.kind == "nats":
        password = _read_secret(probe.secret)
        return password is not None and await nats_ready(probe.host, probe.port, probe.user, password, timeout)
    return await http_status(probe.url, timeout) == 200


async def check_all(probes: Mapping[str, Probe], timeout: float = 3.0) -> dict[str, bool]:
    names = list(probes)
    results = await asyncio.gather(*(check(probes[n], timeout) for n in names))
    return dict(zip(names, results, strict=True))


def probe_from_dict(data: Mapping[str, object]) -> Probe:
    port = data.get("port", 0)
    return Probe(
        kind=str(data["kind"]),
        url=str(data.get("url", "")),
        host=str(data.get("host", "")),
        port=port if isinstance(port, int) else 0,
        user=str(data.get("user", "")),
        secret=str(data.get("secret", "")),
    )
