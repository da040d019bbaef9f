"""Deliver an image from one Docker engine to another without a registry (``docker save | docker load``).

The source engine's ``GET /images/{name}/get`` tar stream is sent as it arrives to the target engine's
``POST /images/load``: nothing is written to disk and memory stays at one chunk whatever the image's size.
Either engine is a unix socket path: the local engine's, or a remote one forwarded over SSH
(:class:`berth_common.ssh.SshPool`). This is how an image built on one server reaches the servers that run
it when the team has no registry (air-gapped sites included).

A target engine whose disk fills during the load mostly just closes the connection; after any failed load
the target is asked whether its disk is full (``berth_common.docker.disk_full.probe``), and if so the
failure says that (:class:`DiskFullError`) instead of a broken pipe.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote

from berth_common.docker import disk_full
from berth_common.docker.api import EngineApi
from berth_common.docker.engine import DockerUnavailable
from berth_common.docker.wire import EngineError
from berth_common.images import check_ref

API = "/v1.41"
CHUNK = 1 << 20


class DeliveryError(RuntimeError):
    """The image could not be read from the source or loaded into the target; the message says which."""


class DiskFullError(DeliveryError):
    """The target engine has no space left for the image (its words in the message)."""


@dataclass(frozen=True)
class EngineCall:
    """One Engine API request as data (tested by exact comparison; executed by :func:`deliver_image`)."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    content_type: str | None = None


def save_call(ref: str) -> EngineCall:
    return EngineCall("GET", f"{API}/images/{quote(check_ref(ref), safe='')}/get")


def load_call() -> EngineCall:
    return EngineCall("POST", f"{API}/images/load", (("quiet", "1"),), "application/x-tar")


def load_result(body: str) -> str:
    """What the target engine said after a load: the loaded image line, or :class:`DeliveryError`."""
    loaded = ""
    for line in body.splitlines():
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(item, dict):
            continue
        if item.get("error") or item.get("errorDetail"):
            detail = item.get("errorDetail") or {}
            message = detail.get("message") if isinstance(detail, dict) else None
            raise DeliveryError(f"the target engine refused the image: {message or item.get('error')}")
        stream = str(item.get("stream") or "").strip()
        if stream:
            loaded = stream
    return loaded


async def deliver_image(source_socket: str, target_socket: str, ref: str, *, timeout: float | None = 3600) -> int:
    """Stream image ``ref`` from the source engine into the target engine; returns the bytes sent.
    :class:`DiskFullError` when the target's disk filled (or was full), :class:`DeliveryError` for any
    other refusal, ``DockerUnavailable`` when an engine went away."""
    save, load = save_call(ref), load_call()
    sent = 0
    version = API.lstrip("/")
    async with asyncio.timeout(timeout):
        async with EngineApi.on_unix(source_socket, version) as src, EngineApi.on_unix(target_socket, version) as dst:
            try:
                async with src.stream(save.method, save.path, versioned=False) as resp:

                    async def chunks() -> AsyncIterator[bytes]:
                        nonlocal sent
                        async for chunk in resp.chunks():
                            sent += len(chunk)
                            yield chunk

                    headers = {"Content-Type": load.content_type or "application/x-tar"}
                    try:
                        _, body = await dst.request(
                            load.method,
                            load.path,
                            params=dict(load.params),
                            data=chunks(),
                            headers=headers,
                            timeout=None,
                            versioned=False,
                        )
                        load_result(body.decode("utf-8", "replace"))
                    except EngineError as exc:
                        await _unless_full(dst, f"{exc.status}: {exc.message[:200]}")
                        raise DeliveryError(
                            f"the target engine refused the image ({exc.status}: {exc.message[:200]})"
                        ) from None
                    except (DeliveryError, DockerUnavailable) as exc:
                        await _unless_full(dst, str(exc))
                        raise
            except EngineError as exc:
                raise DeliveryError(
                    f"the source engine has no image {ref} ({exc.status}: {exc.message[:200]})"
                ) from None
    return sent


async def _unless_full(target: EngineApi, failure: str) -> None:
    """Raise :class:`DiskFullError` when the load's failure says, or the target engine answers, that its
    disk is full."""
    words = failure if disk_full.says_full(failure) else await disk_full.probe(target)
    if words is not None:
        raise DiskFullError(f"the target engine has no space left for the image: {words}")
