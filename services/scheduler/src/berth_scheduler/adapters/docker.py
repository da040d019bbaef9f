"""The one Docker executor: posts the domain's container specs to a server's engine, through the client
of :class:`DockerEngines`.

Every call has a timeout; errors carry a message a person can act on. Not-found on stop/remove is
success (the goal state holds), so every operation can be repeated after a restart.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import aiodocker
import aiohttp
from aiodocker.exceptions import DockerError
from aiodocker.volumes import DockerVolume

from berth_common.docker import LOCAL, DockerEngines, DockerUnavailable
from berth_common.labels import label_filter
from berth_scheduler.domain.containers import ContainerSpec

_PORT_IN_USE = re.compile(r"(port is already allocated|address already in use)", re.IGNORECASE)


class DockerOperationError(RuntimeError):
    """The engine refused an operation; the message says what and why."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class PortInUseError(DockerOperationError):
    """The chosen host port was taken between choosing it and starting the container."""


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    state: str
    labels: dict[str, str]


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str


class DockerExecutor:
    """The container operations on one server's engine; the engine not answering raises DockerUnavailable."""

    def __init__(self, engines: DockerEngines, server_id: str = LOCAL, *, call_timeout_s: float = 60.0) -> None:
        self.engines = engines
        self.server_id = server_id
        self.call_timeout_s = call_timeout_s

    @property
    def docker(self) -> aiodocker.Docker:
        return self.engines.client(self.server_id)

    async def _call(self, what: str, coro: Any, timeout: float | None = None) -> Any:
        try:
            return await asyncio.wait_for(coro, timeout or self.call_timeout_s)
        except DockerError as exc:
            if exc.status == 900:  # aiodocker's code for "cannot connect to the engine"
                raise DockerUnavailable(f"the Docker engine is not reachable ({what}): {exc.message}") from None
            msg = f"docker {what}: {exc.message}"
            if _PORT_IN_USE.search(exc.message or ""):
                raise PortInUseError(msg, exc.status) from None
            raise DockerOperationError(msg, exc.status) from None
        except (aiohttp.ClientConnectionError, FileNotFoundError, ConnectionError) as exc:
            raise DockerUnavailable(f"the Docker engine is not reachable ({what}): {exc}") from None
        except TimeoutError:
            raise DockerUnavailable(f"the Docker engine did not answer {what} in time") from None

    # --- engine ------------------------------------------------------------------------------------

    async def ensure_network(self, name: str, labels: dict[str, str]) -> None:
        try:
            await self._call(f"inspect network {name}", self.docker.networks.get(name))
        except DockerOperationError as exc:
            if exc.status != 404:
                raise
            config = {"Name": name, "Driver": "bridge", "CheckDuplicate": True, "Labels": labels}
            try:
                await self._call(f"create network {name}", self.docker.networks.create(config))
            except DockerOperationError as again:
                if again.status != 409:
                    raise

    async def connect_network(self, network: str, body: dict[str, Any]) -> None:
        """``POST /networks/{network}/connect`` with ``body`` (``domain/compose.connect_body``); a container
        already on the network is left as it is (a repeated step)."""
        try:
            net = await self._call(f"inspect network {network}", self.docker.networks.get(network))
            await self._call(f"connect {body.get('Container')} to {network}", net.connect(body))
        except DockerOperationError as exc:
            if "already exists" not in str(exc):
                raise

    async def remove_network(self, name: str) -> bool:
        """Remove a network no container uses; False when it was not there."""
        try:
            net = await self._call(f"inspect network {name}", self.docker.networks.get(name))
            await self._call(f"remove network {name}", net.delete())
            return True
        except DockerOperationError as exc:
            if exc.status == 404:
                return False
            raise

    # --- volumes -----------------------------------------------------------------------------------

    async def ensure_volume(self, body: dict[str, Any]) -> None:
        """Create the named volume of ``body`` (``domain/volumes.py``); an existing one is kept as it is."""
        await self._call(f"create volume {body['Name']}", self.docker.volumes.create(body))  # type: ignore[no-untyped-call]

    async def list_volumes(self, labels: dict[str, str]) -> list[str]:
        """The names of the volumes carrying every label given."""
        found = await self._call("list volumes", self.docker.volumes.list(filters=label_filter(labels)))  # type: ignore[no-untyped-call]
        return sorted(str(v["Name"]) for v in (found or {}).get("Volumes") or [])

    async def remove_volume(self, name: str) -> bool:
        """Remove a volume no container uses; False when it was already gone."""
        try:
            await self._call(f"remove volume {name}", DockerVolume(self.docker, name).delete())  # type: ignore[no-untyped-call]
            return True
        except DockerOperationError as exc:
            if exc.status == 404:
                return False
            raise

    async def volume_usage(self) -> dict[str, Any]:
        """``GET /system/df?type=volume``: the engine's volumes with ``UsageData.Size`` (an engine older than
        API 1.42 answers every kind of object; only ``Volumes`` is read)."""
        data = await self._call("disk usage", self.docker._query_json("system/df", params={"type": "volume"}))
        return data if isinstance(data, dict) else {}

    # --- containers --------------------------------------------------------------------------------

    async def create(self, spec: ContainerSpec) -> str:
        """Create the container; an existing one of the same name is returned (a repeated step)."""
        try:
            container = await self._call(
                f"create {spec.name}", self.docker.containers.create(spec.body, name=spec.name)
            )
            return str(container.id)
        except DockerOperationError as exc:
            if exc.status == 409:
                info = await self.inspect(spec.name)
                if info is not None:
                    return str(info["Id"])
            if exc.status == 404:
                raise DockerOperationError(
                    f"image {spec.body.get('Image')!r} is not on this server (build it or load it first)", 404
                ) from None
            raise

    async def create_or_find(self, spec: ContainerSpec) -> dict[str, Any] | None:
        """Create the container: None when it is new, or the inspection of the one that already had this
        name (a repeated step). One engine call on the usual path."""
        for _ in range(3):
            try:
                await self._call(f"create {spec.name}", self.docker.containers.create(spec.body, name=spec.name))
                return None
            except DockerOperationError as exc:
                if exc.status == 404:
                    raise DockerOperationError(
                        f"image {spec.body.get('Image')!r} is not on this server (build it or load it first)", 404
                    ) from None
                if exc.status != 409:
                    raise
            info = await self.inspect(spec.name)
            if info is not None:
                return info
        raise DockerOperationError(f"docker create {spec.name}: the name is taken by a container that keeps going away")

    async def start(self, name: str) -> None:
        await self._call(f"start {name}", self.docker.containers.container(name).start())

    async def inspect(self, name: str) -> dict[str, Any] | None:
        try:
            container = await self._call(f"inspect {name}", self.docker.containers.get(name))
        except DockerOperationError as exc:
            if exc.status == 404:
                return None
            raise
        data: dict[str, Any] = container._container
        return data

    async def stop(self, name: str, timeout_s: int | None = None, *, max_wait_s: float = 3600.0) -> None:
        """SIGTERM (the image's stop signal), then SIGKILL after ``timeout_s`` (None: the container's own
        ``StopTimeout``, set from the deployment that created it); gone or stopped is fine."""
        container = self.docker.containers.container(name)
        wait = (timeout_s if timeout_s is not None else max_wait_s) + self.call_timeout_s
        try:
            await self._call(f"stop {name}", container.stop(t=timeout_s), wait)
        except DockerOperationError as exc:
            if exc.status not in (304, 404):
                raise

    async def remove(self, name: str) -> None:
        """Remove (killing it if it still runs); an absent container is already removed."""
        try:
            await self._call(f"remove {name}", self.docker.containers.container(name).delete(force=True, v=True))
        except DockerOperationError as exc:
            if exc.status == 404 or ("removal of container" in str(exc) and "already in progress" in str(exc)):
                return
            raise

    async def list_containers(self, labels: dict[str, str]) -> list[ContainerInfo]:
        """Containers (running or not) carrying every label given."""
        found = await self._call("list containers", self.docker.containers.list(all=True, filters=label_filter(labels)))
        out = []
        for c in found:
            raw = c._container
            names = [n.lstrip("/") for n in raw.get("Names") or []]
            out.append(ContainerInfo(raw["Id"], names[0] if names else raw["Id"], raw.get("State", ""), raw["Labels"]))
        return sorted(out, key=lambda i: i.name)

    async def list_images(self, labels: dict[str, str]) -> list[tuple[str, tuple[str, ...], dict[str, str]]]:
        """(image id, repo tags, labels) of the images carrying every label."""
        found = await self._call("list images", self.docker.images.list(filters=label_filter(labels)))
        return [
            (str(i["Id"]), tuple(t for t in (i.get("RepoTags") or []) if t != "<none>:<none>"), i.get("Labels") or {})
            for i in found
        ]

    async def image_tags(self, repository: str) -> list[str]:
        """Every tag of ``repository`` on this server (``<repository>:<tag>``)."""
        filters = {"reference": [repository]}
        found = await self._call("list images", self.docker.images.list(filters=filters))
        prefix = f"{repository}:"
        return sorted({t for i in found for t in (i.get("RepoTags") or []) if t.startswith(prefix)})

    async def untag_image(self, tag: str) -> bool:
        """Remove one tag (the image goes with its last tag). False if an existing container still uses it."""
        try:
            await self._call("remove image", self.docker.images.delete(tag, force=False, noprune=False))
            return True
        except DockerOperationError as exc:
            if exc.status in (404, 409):
                return exc.status == 404
            raise

    async def exec(
        self, name: str, argv: list[str], timeout_s: float, *, env: dict[str, str] | None = None, user: str = ""
    ) -> ExecResult:
        """Run ``argv`` in the container (no shell unless the argv names one), with ``env`` in the exec's
        environment (where a tool reads its secrets) as ``user`` (the image's by default); exit code and
        output."""

        async def run() -> ExecResult:
            container = self.docker.containers.container(name)
            ex = await container.exec(argv, stdout=True, stderr=True, environment=env, user=user)
            chunks: list[bytes] = []
            async with ex.start(detach=False) as stream:
                while (msg := await stream.read_out()) is not None:
                    if sum(len(c) for c in chunks) < 8192:
                        chunks.append(msg.data)
            info = await ex.inspect()
            while info.get("Running"):
                await asyncio.sleep(0.02)
                info = await ex.inspect()
            code = info.get("ExitCode")
            return ExecResult(int(code) if code is not None else -1, b"".join(chunks).decode(errors="replace"))

        result: ExecResult = await self._call(f"exec in {name}", run(), timeout_s)
        return result

    async def logs(self, name: str, tail: int = 20) -> str:
        try:
            lines = await self._call(
                f"logs of {name}",
                self.docker.containers.container(name).log(stdout=True, stderr=True, tail=tail),
                10,
            )
        except (DockerOperationError, DockerUnavailable):
            return ""
        return "".join(lines)[-4000:]


def host_port_of(info: dict[str, Any], container_port: int) -> int | None:
    """The host port Docker bound for ``container_port`` (None while the container is not running)."""
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    for binding in ports.get(f"{container_port}/tcp") or []:
        if binding.get("HostPort"):
            return int(binding["HostPort"])
    return None
