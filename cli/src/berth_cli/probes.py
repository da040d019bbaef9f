"""Readiness probes, kept light (no HTTP client library) because the supervisor runs them too."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
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


async def check(probe: Probe, timeout: float = 3.0) -> bool:
    if probe.kind == "pg":
        return await pg_ready(probe.host, probe.port, timeout)
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
    )
