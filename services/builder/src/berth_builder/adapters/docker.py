"""The one adapter that talks to the Docker Engine, through the client of :class:`DockerEngines`.

It executes a :class:`~berth_builder.domain.request.BuildRequest` (the tar context streamed from disk),
hands every JSON object of the progress stream to a callback, and inspects and tags images.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp

from berth_builder.adapters.context import iter_chunks
from berth_builder.domain.push import EngineCall
from berth_builder.domain.request import BuildRequest
from berth_common import labels
from berth_common.docker import LOCAL, DockerEngines, DockerUnavailable, unreachable

ObjectSink = Callable[[dict[str, Any]], Awaitable[None]]


class DockerClient:
    """Builds on one server's engine (an engine that does not answer raises DockerUnavailable: retried)."""

    def __init__(self, engines: DockerEngines, server_id: str = LOCAL) -> None:
        self.engines = engines
        self.server_id = server_id

    @property
    def docker(self) -> aiodocker.Docker:
        return self.engines.client(self.server_id)

    async def ping(self) -> bool:
        try:
            async with self.docker._query("_ping", versioned_api=False) as resp:
                return resp.status == 200
        except Exception:
            return False

    async def image_id(self, ref: str) -> str | None:
        try:
            info = await self.docker.images.inspect(ref)
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return None
            _raise_if_unreachable(exc)
            raise
        return str(info["Id"])

    async def tag(self, image: str, tag: str) -> None:
        repo, _, version = tag.rpartition(":") if ":" in tag.rsplit("/", 1)[-1] else (tag, "", "latest")
        try:
            await self.docker.images.tag(image, repo, tag=version)
        except aiodocker.DockerError as exc:
            _raise_if_unreachable(exc)
            raise

    async def untag(self, tag: str) -> bool:
        """Remove ``tag`` (the image goes with its last tag unless a container uses it); False if absent."""
        try:
            await self.docker.images.delete(tag, force=False, noprune=False)
            return True
        except aiodocker.DockerError as exc:
            if exc.status in (404, 409):
                return False
            _raise_if_unreachable(exc)
            raise

    async def remove_build(self, build_id: str, tag: str) -> list[str]:
        """Remove what a stopped build left: images labelled with its build id (they are its own: an image
        reused from another build carries that build's id), then ``tag`` if it still names an image. What
        was removed (image ids, the tag)."""
        removed: list[str] = []
        try:
            found = await self.docker.images.list(filters=labels.label_filter({labels.BUILD: build_id}))
            for image in found:
                await self.docker.images.delete(str(image["Id"]), force=True)
                removed.append(str(image["Id"]))
            if await self.untag(tag):
                removed.append(tag)
        except aiodocker.DockerError as exc:
            if exc.status not in (404, 409):  # gone already, or in use by a container: left alone
                _raise_if_unreachable(exc)
                raise
        return removed

    async def build(
        self,
        request: BuildRequest,
        context: Path,
        on_object: ObjectSink,
        *,
        secrets: Mapping[str, str] | None = None,
        registries: Mapping[str, tuple[str, str]] | None = None,
        registry_config: str | None = None,
    ) -> None:
        """POST /build and feed each progress object to ``on_object`` until the stream ends.

        With secret names in the request, or ``registries`` given (host -> (user, password): the credentials
        for the registries mapped base images come from; BuildKit pulls a base only through a session, with
        them or anonymously) on BuildKit, a BuildKit session serving them is open during the build; the
        legacy builder takes the credentials as ``registry_config`` (``X-Registry-Config``).
        """
        headers = {"X-Registry-Config": registry_config} if registry_config else {}
        if request.secret_names or (registries is not None and request.engine == "buildkit"):
            # the session's HTTP/2 stack (h2, hpack) loads with the first build that needs it, not at start
            from berth_builder.adapters.session import SecretSession

            async with SecretSession(self.engines, self.server_id, secrets or {}, registries) as session:
                query = {**request.query(), "session": session.id}
                await self._post_build(query, context, on_object, headers)
        else:
            await self._post_build(request.query(), context, on_object, headers)

    async def stream(self, call: EngineCall, on_object: ObjectSink) -> None:
        """Run an engine call that answers with a JSON progress stream (a push), each object to ``on_object``."""
        try:
            resp = await self.docker._do_query(
                call.path,
                call.method,
                params=call.params,
                headers=call.headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
            )
        except aiodocker.DockerError as exc:
            _raise_if_unreachable(exc)
            await on_object({"error": str(exc.message)})
            return
        await self._read_stream(resp, on_object)

    async def call(self, call: EngineCall) -> None:
        """Run an engine call without a body worth reading (tag); raises aiodocker's error on refusal."""
        try:
            async with self.docker._query(call.path, call.method, params=call.params, headers=call.headers):
                pass
        except aiodocker.DockerError as exc:
            _raise_if_unreachable(exc)
            raise

    async def _post_build(
        self, query: dict[str, str], context: Path, on_object: ObjectSink, headers: Mapping[str, str]
    ) -> None:
        async def body() -> AsyncIterator[bytes]:
            for chunk in iter_chunks(context):
                yield chunk
                await asyncio.sleep(0)

        try:
            resp = await self.docker._do_query(
                "build",
                "POST",
                params=query,
                headers={"Content-Type": "application/x-tar", **headers},
                data=body(),
                timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
            )
        except aiodocker.DockerError as exc:
            _raise_if_unreachable(exc)
            await on_object({"error": f"the Docker engine refused the build: {exc.message}"})
            return
        await self._read_stream(resp, on_object)

    async def _read_stream(self, resp: Any, on_object: ObjectSink) -> None:
        try:
            buf = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    await _deliver(raw, on_object)
            await _deliver(buf, on_object)
        except aiohttp.ClientConnectionError as exc:
            raise DockerUnavailable(f"the connection to the Docker engine broke: {exc}") from exc
        finally:
            resp.close()


def _raise_if_unreachable(exc: aiodocker.DockerError) -> None:
    """An engine that did not answer is a transient condition: the build is retried."""
    if unreachable(exc):
        raise DockerUnavailable(f"the Docker engine did not answer: {exc.message}") from exc


async def _deliver(raw: bytes, on_object: ObjectSink) -> None:
    raw = raw.strip()
    if not raw:
        return
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError:
        obj = {"stream": raw.decode(errors="replace") + "\n"}
    if isinstance(obj, dict):
        await on_object(obj)
