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

from berth_builder.adapters.context import iter_chunks
from berth_builder.domain.push import EngineCall
from berth_builder.domain.request import BuildRequest
from berth_common import labels
from berth_common.docker import LOCAL, DockerEngines, DockerUnavailable, EngineApi, EngineError, Response, disk_full

ObjectSink = Callable[[dict[str, Any]], Awaitable[None]]


class DockerClient:
    """Builds on one server's engine (an engine that does not answer raises DockerUnavailable: retried)."""

    def __init__(self, engines: DockerEngines, server_id: str = LOCAL) -> None:
        self.engines = engines
        self.server_id = server_id

    @property
    def docker(self) -> EngineApi:
        return self.engines.api(self.server_id)

    async def ping(self) -> bool:
        try:
            status, _ = await self.docker.request("GET", "_ping", versioned=False)
            return status == 200
        except Exception:
            return False

    async def image_id(self, ref: str) -> str | None:
        try:
            info = await self.docker.get(f"images/{ref}/json")
        except EngineError as exc:
            if exc.status == 404:
                return None
            raise
        return str(info["Id"])

    async def tag(self, image: str, tag: str) -> None:
        repo, _, version = tag.rpartition(":") if ":" in tag.rsplit("/", 1)[-1] else (tag, "", "latest")
        params = {"repo": repo} | ({"tag": version} if version else {})
        await self.docker.request("POST", f"images/{image}/tag", params=params)

    async def untag(self, tag: str) -> bool:
        """Remove ``tag`` (the image goes with its last tag unless a container uses it); False if absent."""
        try:
            await self.docker.request("DELETE", f"images/{tag}", params={"force": False, "noprune": False})
            return True
        except EngineError as exc:
            if exc.status in (404, 409):
                return False
            raise

    async def remove_build(self, build_id: str, tag: str) -> list[str]:
        """Remove what a stopped build left: images labelled with its build id (they are its own: an image
        reused from another build carries that build's id), then ``tag`` if it still names an image. What
        was removed (image ids, the tag)."""
        removed: list[str] = []
        try:
            found = await self.docker.get("images/json", {"filters": labels.label_filter({labels.BUILD: build_id})})
            for image in found:
                await self.docker.request("DELETE", f"images/{image['Id']}", params={"force": True})
                removed.append(str(image["Id"]))
            if await self.untag(tag):
                removed.append(tag)
        except EngineError as exc:
            if exc.status not in (404, 409):  # gone already, or in use by a container: left alone
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
        opened = False
        try:
            async with self.docker.stream(call.method, call.path, params=call.params, headers=call.headers) as resp:
                opened = True
                await _read_stream(resp, on_object)
        except EngineError as exc:
            if opened:
                raise
            await on_object({"error": str(exc.message)})

    async def call(self, call: EngineCall) -> None:
        """Run an engine call without a body worth reading (tag); raises EngineError on refusal."""
        await self.docker.request(call.method, call.path, params=call.params, headers=call.headers)

    async def _post_build(
        self, query: dict[str, str], context: Path, on_object: ObjectSink, headers: Mapping[str, str]
    ) -> None:
        async def body() -> AsyncIterator[bytes]:
            for chunk in iter_chunks(context):
                yield chunk
                await asyncio.sleep(0)

        opened = False
        try:
            async with self.docker.stream(
                "POST", "build", params=query, headers={"Content-Type": "application/x-tar", **headers}, data=body()
            ) as resp:
                opened = True
                await _read_stream(resp, on_object)
        except EngineError as exc:
            if opened:
                raise
            await on_object({"error": f"the Docker engine refused the build: {exc.message}"})
        except DockerUnavailable:
            # an engine whose disk fills while it takes the context closes the connection: asked, it says so
            words = await disk_full.probe(self.docker)
            if words is None:
                raise
            await on_object({"error": f"the Docker engine could not store the build context: {words}"})


async def _read_stream(resp: Response, on_object: ObjectSink) -> None:
    """Each line of a progress stream to ``on_object`` (a line that is no JSON as build output); a stream
    the engine drops raises DockerUnavailable (the build is retried)."""
    try:
        async for raw in resp.lines():
            await _deliver(raw, on_object)
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        raise DockerUnavailable(f"the connection to the Docker engine broke: {exc}") from exc


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
