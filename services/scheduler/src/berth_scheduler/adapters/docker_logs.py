"""A container's log read as a stream from its server's engine (``GET /containers/{name}/logs``): the last
lines of a long answer kept as it is read, or a followed log chunk by chunk (``berth_common.docker.logframes``
cuts the frames into lines). The engine not answering is ``DockerUnavailable``; a refusal (the container is
gone) is ``DockerOperationError``."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from berth_common.docker import DockerUnavailable
from berth_common.docker.logframes import Line, LineReader
from berth_common.docker.wire import EngineError
from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError


def _failure(name: str, exc: BaseException) -> Exception:
    if isinstance(exc, EngineError):
        return DockerOperationError(f"docker logs of {name}: {exc.message}", exc.status)
    return DockerUnavailable(f"the Docker engine is not reachable (logs of {name}): {exc}")


async def chunks(docker: DockerExecutor, name: str, params: dict[str, str]) -> AsyncIterator[bytes]:
    """The engine's answer as it comes (a followed log never ends by itself: the caller stops reading)."""
    try:
        async with docker.docker.stream("GET", f"containers/{name}/logs", params=params) as response:
            async for chunk in response.chunks():
                yield chunk
    except (EngineError, DockerUnavailable, ConnectionError, FileNotFoundError) as exc:
        raise _failure(name, exc) from None


async def last_lines(
    docker: DockerExecutor, name: str, params: dict[str, str], keep: int, *, tty: bool, timeout_s: float
) -> list[Line]:
    """The last ``keep`` lines of the answer, read to its end within ``timeout_s`` (only ``keep`` are held)."""
    reader = LineReader(tty=tty)
    kept: deque[Line] = deque(maxlen=keep)

    async def read() -> None:
        async for chunk in chunks(docker, name, params):
            kept.extend(reader.feed(chunk))
        kept.extend(reader.flush())

    try:
        await asyncio.wait_for(read(), timeout_s)
    except TimeoutError:
        raise DockerUnavailable(f"the Docker engine did not answer the logs of {name} in time") from None
    return list(kept)


async def followed(
    docker: DockerExecutor, name: str, params: dict[str, str], *, tty: bool
) -> AsyncIterator[list[Line]]:
    """The lines of a followed log, a list per chunk the engine sends, until the container's log ends."""
    reader = LineReader(tty=tty)
    async for chunk in chunks(docker, name, params):
        found = reader.feed(chunk)
        if found:
            yield found
    rest = reader.flush()
    if rest:
        yield rest


def tty_of(info: dict[str, Any]) -> bool:
    return bool((info.get("Config") or {}).get("Tty"))
