"""Sends one Docker call of a server's proxy (the data of ``domain/server_proxy.py`` and
``domain/proxy_handover.py``) through the server's client of the Docker connection factory: the one executor
of those calls."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from berth_proxy_sync.domain import server_proxy as sp

if TYPE_CHECKING:
    from berth_common.docker import EngineApi


async def call(client: EngineApi, c: sp.Call, ok: tuple[int, ...] = (200, 201, 204, 304)) -> tuple[int, Any]:
    """Send one call; (status, JSON body). A status not in ``ok`` raises ServerProxyError; an engine that does
    not answer, DockerUnavailable."""
    from berth_common.docker import DockerUnavailable, EngineError, unreachable

    data = None if c.body is None else json.dumps(c.body)
    try:
        status, raw = await client.request(c.method, c.path, data=data, versioned=False)
    except EngineError as exc:
        if exc.status in ok:
            return exc.status, None
        raise sp.ServerProxyError(f"{c.method} {c.path}: Docker answered {exc.status}: {exc.message}") from None
    except DockerUnavailable:
        raise
    except Exception as exc:
        if unreachable(exc):
            raise DockerUnavailable(f"{c.method} {c.path}: {exc}") from None
        raise
    text = raw.decode("utf-8", "replace")
    if status not in ok:
        raise sp.ServerProxyError(f"{c.method} {c.path}: Docker answered {status}: {text[:300]}")
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, None
