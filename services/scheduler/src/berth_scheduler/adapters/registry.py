"""Image pulls through the engine: executes the pure ``domain.images.PullCall`` and reads its progress stream.

The engine contacts the registry itself (``X-Registry-Auth`` carries a team's credentials for that one
call); what the registry answers comes back either as the call's error or in-band in the stream. Both
become :class:`PullError` with the engine's words; the engine itself not answering is
:class:`EngineUnreachableError` (a ``ConnectionError``: retried like any step). After a failed pull the
engine is asked whether its disk is full (``berth_common.docker.disk_full.probe``): an engine out of room
may drop the stream or answer in words that do not say so, and the pull's error then says it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from berth_common.docker import DockerUnavailable, EngineError, disk_full
from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError
from berth_scheduler.domain.images import PullCall, failure_kind, stream_error

OnMessage = Callable[[dict[str, Any]], Awaitable[None]]


class PullError(RuntimeError):
    """The registry (through the engine) refused or failed the pull; the message is the engine's."""


class EngineUnreachableError(ConnectionError):
    """The engine itself did not answer (a ``ConnectionError``: the rollout retries the step)."""


class ImageRegistry:
    def __init__(self, docker: DockerExecutor, *, call_timeout_s: float = 60.0) -> None:
        self.docker = docker
        self.call_timeout_s = call_timeout_s

    async def local(self, image: str) -> list[str] | None:
        """The image's ``RepoDigests`` when it is on this server (possibly empty), None when it is not."""
        try:
            info = await asyncio.wait_for(self.docker.docker.get(f"images/{image}/json"), self.call_timeout_s)
        except EngineError as exc:
            if exc.status == 404:
                return None
            raise DockerOperationError(f"docker inspect image {image}: {exc.message}", exc.status) from None
        except (DockerUnavailable, FileNotFoundError, ConnectionError) as exc:
            raise EngineUnreachableError(f"the Docker engine is not reachable (inspect image): {exc}") from None
        except TimeoutError:
            raise EngineUnreachableError("the Docker engine did not answer inspect image in time") from None
        return [str(d) for d in info.get("RepoDigests") or []]

    async def pull(self, call: PullCall, on_message: OnMessage, timeout_s: float) -> None:
        """Run the pull, handing every stream message to ``on_message``; raises :class:`PullError`."""

        async def run() -> None:
            cm = self.docker.docker.stream(call.method, call.path, params=dict(call.params), headers=dict(call.headers))
            async with cm as response:
                async for message in response.json_lines():
                    if not isinstance(message, dict):
                        continue
                    error = stream_error(message)
                    if error is not None:
                        raise PullError(error)
                    await on_message(message)

        try:
            await asyncio.wait_for(run(), timeout_s)
        except PullError as exc:
            raise PullError(await self._unless_full(str(exc))) from None
        except EngineError as exc:
            raise PullError(await self._unless_full(str(exc.message))) from None
        except (DockerUnavailable, FileNotFoundError, ConnectionError) as exc:
            words = await disk_full.probe(self.docker.docker)
            if words is not None:  # an engine that ran out of room mid-pull and dropped the stream
                raise PullError(f"the engine stopped the pull ({exc}); asked, it says: {words}") from None
            raise EngineUnreachableError(f"the Docker engine is not reachable (pull): {exc}") from None
        except TimeoutError:
            raise PullError(f"the pull did not finish within {timeout_s:g}s (timed out)") from None

    async def _unless_full(self, error: str) -> str:
        """The engine's words for a failed pull, with its full disk's words after them when it says, asked
        (``disk_full.probe``), that its disk is full although the pull's error did not (a refusal by the
        registry, a wrong name or credentials, is not asked about)."""
        if disk_full.says_full(error) or failure_kind(error) in ("unauthorized", "not_found"):
            return error  # said already, or the registry's own answer
        words = await disk_full.probe(self.docker.docker)
        return error if words is None else f"{error} (asked, the engine says: {words})"
