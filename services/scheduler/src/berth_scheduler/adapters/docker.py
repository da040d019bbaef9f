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

from berth_common.docker import LOCAL, DockerEngines, DockerUnavailable, EngineApi, EngineError, disk_full
from berth_common.labels import label_filter
from berth_scheduler.adapters.docker_exec import ExecResult, read_logs, run_exec
from berth_scheduler.domain.containers import ContainerSpec
from berth_scheduler.domain.images import TagCall

_PORT_IN_USE = re.compile(r"(port is already allocated|address already in use)", re.IGNORECASE)


def server_words(server_id: str) -> str:
    """The server in a person's words ("server 6292e648", "the control plane's server")."""
    return "the control plane's server" if server_id == LOCAL else f"server {server_id}"


def explained(message: str, server_id: str) -> str:
    """An engine's refusal in words a person acts on: a full disk named as such (the engine's own text,
    ``... no space left on device``, kept after it: ``berth_common.docker.disk_full``)."""
    return disk_full.explained(message, server_words(server_id))


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
    image_id: str = ""  # the image it runs (``ImageID``)


class DockerExecutor:
    """The container operations on one server's engine; the engine not answering raises DockerUnavailable."""

    def __init__(self, engines: DockerEngines, server_id: str = LOCAL, *, call_timeout_s: float = 60.0) -> None:
        self.engines = engines
        self.server_id = server_id
        self.call_timeout_s = call_timeout_s
        self._network_locks: dict[str, asyncio.Lock] = {}  # one creation of a name at a time (see ensure_network)

    @property
    def docker(self) -> EngineApi:
        return self.engines.api(self.server_id)

    async def _call(self, what: str, coro: Any, timeout: float | None = None, *, writes: bool = False) -> Any:
        """Run one engine call; ``writes``: it writes under the data root (a container's or volume's making,
        a start, files put in), so a refusal for a fault of the engine's whose words do not say why is
        followed by the full-disk probe (overlay2 on a full disk may answer ``chown .../work/work: no such
        file or directory``, its failed ``mkdir`` unreported), and a full disk is named first."""
        try:
            return await asyncio.wait_for(coro, timeout or self.call_timeout_s)
        except EngineError as exc:
            msg = explained(f"docker {what}: {exc.message}", self.server_id)
            if _PORT_IN_USE.search(exc.message or ""):  # words that say why: no probe
                raise PortInUseError(msg, exc.status) from None
            if writes and exc.status >= 500 and not disk_full.says_full(exc.message or ""):
                words = await disk_full.probe(self.docker)
                if words is not None:
                    msg = explained(f"{words}; docker {what}: {exc.message}", self.server_id)
            raise DockerOperationError(msg, exc.status) from None
        except (DockerUnavailable, FileNotFoundError, ConnectionError) as exc:
            raise DockerUnavailable(f"the Docker engine is not reachable ({what}): {exc}") from None
        except TimeoutError:
            raise DockerUnavailable(f"the Docker engine did not answer {what} in time") from None

    def lock(self, key: str) -> asyncio.Lock:
        """This executor's lock of ``key`` (a network's or a volume's name): one making of it at a time."""
        return self._network_locks.setdefault(key, asyncio.Lock())

    # --- engine ------------------------------------------------------------------------------------

    async def ensure_network(
        self, name: str, labels: dict[str, str], *, internal: bool = False, extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Make the network unless it exists (``internal``: Docker's ``Internal``, nothing forwarded out of it;
        ``extra``: more keys of the create body, ``domain/compose.network_extra``); the existing network's
        inspection, or an empty dict when it was made now. The engine's ``CheckDuplicate`` does not hold
        against two creations at once (two deployments preparing a new server make two networks of one name,
        then every use of the name is ambiguous): this executor makes one name at a time."""
        async with self.lock(name):
            try:
                return dict(await self._call(f"inspect network {name}", self.docker.get(f"networks/{name}")) or {})
            except DockerOperationError as exc:
                if exc.status != 404:
                    raise
                config = {"Name": name, "Driver": "bridge", "CheckDuplicate": True, "Labels": labels, **(extra or {})}
                if internal:
                    config["Internal"] = True
                create = self.docker.json("POST", "networks/create", body=config)
                try:
                    await self._call(f"create network {name}", create)
                except DockerOperationError as again:
                    if again.status != 409:
                        raise
                return {}

    async def connect_network(self, network: str, body: dict[str, Any]) -> None:
        """``POST /networks/{network}/connect`` with ``body`` (``domain/compose.connect_body``); a container
        already on the network is left as it is (a repeated step)."""
        try:
            net = await self._call(f"inspect network {network}", self.docker.get(f"networks/{network}"))
            connect = self.docker.request("POST", f"networks/{net['Id']}/connect", body=body)
            await self._call(f"connect {body.get('Container')} to {network}", connect)
        except DockerOperationError as exc:
            if "already exists" not in str(exc):
                raise

    async def remove_network(self, name: str) -> bool:
        """Remove a network no container uses; False when it was not there."""
        try:
            net = await self._call(f"inspect network {name}", self.docker.get(f"networks/{name}"))
            await self._call(f"remove network {name}", self.docker.request("DELETE", f"networks/{net['Id']}"))
            return True
        except DockerOperationError as exc:
            if exc.status == 404:
                return False
            raise

    # --- volumes -----------------------------------------------------------------------------------

    async def ensure_volume(self, body: dict[str, Any]) -> str:
        """Create the named volume of ``body`` (``domain/volumes.py``); an existing one is kept as it is.
        Returns its ``Mountpoint`` on the server."""
        return str((await self.made_volume(body)).get("Mountpoint") or "")

    async def made_volume(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create the named volume of ``body`` unless it exists; the engine's answer: the volume as it is
        (an existing one with the options it was made with)."""
        create = self.docker.json("POST", "volumes/create", body=body)
        made = await self._call(f"create volume {body['Name']}", create, writes=True)
        return dict(made or {})

    async def mounting(self, volume: str) -> list[dict[str, Any]]:
        """The containers (running or not) that mount ``volume``, as ``GET /containers/json`` lists them (the
        engine's filter also matches volumes whose name merely contains it: see their ``Mounts``)."""
        params = {"all": True, "filters": {"volume": [volume]}}
        return list(await self._call("list containers", self.docker.get("containers/json", params)) or [])

    async def list_volumes(self, labels: dict[str, str]) -> list[str]:
        """The names of the volumes carrying every label given."""
        found = await self._call("list volumes", self.docker.get("volumes", {"filters": label_filter(labels)}))
        return sorted(str(v["Name"]) for v in (found or {}).get("Volumes") or [])

    async def remove_volume(self, name: str) -> bool:
        """Remove a volume no container uses; False when it was already gone."""
        try:
            await self._call(f"remove volume {name}", self.docker.request("DELETE", f"volumes/{name}"))
            return True
        except DockerOperationError as exc:
            if exc.status == 404:
                return False
            raise

    async def holds(self, name: str, path: str) -> bool:
        """Whether the container ``name`` (created or running, its volumes mounted) has ``path``."""
        try:
            look = self.docker.request("HEAD", f"containers/{name}/archive", params={"path": path})
            await self._call(f"look into {name}", look)
            return True
        except DockerOperationError as exc:
            if exc.status == 404:
                return False
            raise

    async def volume_usage(self) -> dict[str, Any]:
        """``GET /system/df?type=volume``: the engine's volumes with ``UsageData.Size`` (an engine older than
        API 1.42 answers every kind of object; only ``Volumes`` is read)."""
        data = await self._call("disk usage", self.docker.get("system/df", {"type": "volume"}))
        return data if isinstance(data, dict) else {}

    # --- containers --------------------------------------------------------------------------------

    async def create(self, spec: ContainerSpec) -> str:
        """Create the container; an existing one of the same name is returned (a repeated step)."""
        try:
            container = await self._call(f"create {spec.name}", self._create(spec), writes=True)
            return str(container["Id"])
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
                await self._call(f"create {spec.name}", self._create(spec), writes=True)
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
        gone = f"docker create {spec.name}: the name is taken by a container that keeps going away (or is being made)"
        raise DockerOperationError(gone, 409)

    def _create(self, spec: ContainerSpec) -> Any:
        return self.docker.json("POST", "containers/create", params={"name": spec.name}, body=spec.body)

    async def put_archive(self, name: str, path: str, tar: bytes) -> None:
        """Extract the tar archive ``tar`` at ``path`` of the container ``name`` (created or running)."""
        put = self.docker.request(
            "PUT",
            f"containers/{name}/archive",
            params={"path": path},
            data=tar,
            headers={"Content-Type": "application/x-tar"},
        )
        await self._call(f"put files into {name}", put, writes=True)

    async def start(self, name: str) -> None:
        await self._call(f"start {name}", self.docker.request("POST", f"containers/{name}/start"), writes=True)

    async def restart(self, name: str, timeout_s: int | None = None) -> None:
        """Stop (SIGKILL after ``timeout_s``; None: the container's own) and start the container again."""
        params = {} if timeout_s is None else {"t": timeout_s}
        wait = (timeout_s or 10) + self.call_timeout_s
        await self._call(
            f"restart {name}",
            self.docker.request("POST", f"containers/{name}/restart", params=params, timeout=None),
            wait,
        )

    async def inspect(self, name: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = await self._call(f"inspect {name}", self.docker.get(f"containers/{name}/json"))
        except DockerOperationError as exc:
            if exc.status == 404:
                return None
            raise
        return data

    async def stop(self, name: str, timeout_s: int | None = None, *, max_wait_s: float = 3600.0) -> None:
        """SIGTERM (the image's stop signal), then SIGKILL after ``timeout_s`` (None: the container's own
        ``StopTimeout``, set from the deployment that created it); gone or stopped is fine."""
        params = {} if timeout_s is None else {"t": timeout_s}
        wait = (timeout_s if timeout_s is not None else max_wait_s) + self.call_timeout_s
        stop = self.docker.request("POST", f"containers/{name}/stop", params=params, timeout=None)
        try:
            await self._call(f"stop {name}", stop, wait)
        except DockerOperationError as exc:
            if exc.status not in (304, 404):
                raise

    async def remove(self, name: str) -> None:
        """Remove (killing it if it still runs); an absent container is already removed."""
        try:
            params = {"force": True, "v": True}
            await self._call(f"remove {name}", self.docker.request("DELETE", f"containers/{name}", params=params))
        except DockerOperationError as exc:
            if exc.status == 404 or ("removal of container" in str(exc) and "already in progress" in str(exc)):
                return
            raise

    async def list_networks(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        """``GET /networks`` with the engine's ``filters`` (driver, label, ...)."""
        return list(await self._call("list networks", self.docker.get("networks", {"filters": filters})) or [])

    async def list_containers(self, labels: dict[str, str]) -> list[ContainerInfo]:
        """Containers (running or not) carrying every label given."""
        params = {"all": True, "filters": label_filter(labels)}
        found = await self._call("list containers", self.docker.get("containers/json", params))
        out = []
        for raw in found:
            names = [n.lstrip("/") for n in raw.get("Names") or []]
            name = names[0] if names else raw["Id"]
            out.append(ContainerInfo(raw["Id"], name, raw.get("State", ""), raw["Labels"], raw.get("ImageID", "")))
        return sorted(out, key=lambda i: i.name)

    async def list_images(self, labels: dict[str, str]) -> list[tuple[str, tuple[str, ...], dict[str, str]]]:
        """(image id, repo tags, labels) of the images carrying every label."""
        found = await self._call("list images", self.docker.get("images/json", {"filters": label_filter(labels)}))
        return [
            (str(i["Id"]), tuple(t for t in (i.get("RepoTags") or []) if t != "<none>:<none>"), i.get("Labels") or {})
            for i in found
        ]

    async def images_of(
        self, repositories: list[str]
    ) -> list[tuple[str, tuple[str, ...], tuple[str, ...], dict[str, str]]]:
        """(image id, repo tags, repo digests, labels) of the images tagged or pulled by digest in any of
        ``repositories``."""
        found = await self._call(
            "list images", self.docker.get("images/json", {"filters": {"reference": repositories}})
        )
        return [
            (
                str(i["Id"]),
                tuple(t for t in (i.get("RepoTags") or []) if t != "<none>:<none>"),
                tuple(d for d in (i.get("RepoDigests") or []) if d != "<none>@<none>"),
                i.get("Labels") or {},
            )
            for i in found
        ]

    async def image_tags(self, repository: str) -> list[str]:
        """Every tag of ``repository`` on this server (``<repository>:<tag>``)."""
        filters = {"reference": [repository]}
        found = await self._call("list images", self.docker.get("images/json", {"filters": filters}))
        prefix = f"{repository}:"
        return sorted({t for i in found for t in (i.get("RepoTags") or []) if t.startswith(prefix)})

    async def untag_image(self, tag: str) -> bool:
        """Remove one tag (the image goes with its last tag). False if an existing container still uses it."""
        try:
            params = {"force": False, "noprune": False}
            await self._call("remove image", self.docker.request("DELETE", f"images/{tag}", params=params))
            return True
        except DockerOperationError as exc:
            if exc.status in (404, 409):
                return exc.status == 404
            raise

    async def tag_image(self, call: TagCall) -> None:
        """Give an image on this server one more name (``domain.images.TagCall``)."""
        await self._call("tag image", self.docker.request(call.method, call.path, params=call.params))

    async def pull(self, image: str) -> None:
        """``POST /images/create`` of ``image`` (``latest`` when it names no tag or digest) read to its end; an
        error in the progress stream raises EngineError (status 0) with the engine's words."""
        params = {"fromImage": image}
        if "@" not in image and ":" not in image.rsplit("/", 1)[-1]:
            params["tag"] = "latest"
        async with self.docker.stream("POST", "images/create", params=params) as response:
            async for message in response.json_lines():
                if isinstance(message, dict) and (message.get("error") or message.get("errorDetail")):
                    detail = message.get("errorDetail") or {}
                    raise EngineError(0, str(detail.get("message") or message.get("error")))

    async def exec(
        self, name: str, argv: list[str], timeout_s: float, *, env: dict[str, str] | None = None, user: str = ""
    ) -> ExecResult:
        """Run ``argv`` in the container (no shell unless the argv names one), with ``env`` in the exec's
        environment (where a tool reads its secrets) as ``user`` (the image's by default); exit code and
        output."""
        result: ExecResult = await self._call(
            f"exec in {name}", run_exec(self.docker, name, argv, env, user), timeout_s
        )
        return result

    async def logs(self, name: str, tail: int = 20) -> str:
        """The container's last ``tail`` lines of output, stdout and stderr as they came ("" when unknown)."""
        try:
            text: str = await self._call(f"logs of {name}", read_logs(self.docker, name, tail), 10)
        except (DockerOperationError, DockerUnavailable):
            return ""
        return text[-4000:]


def host_port_of(info: dict[str, Any], container_port: int) -> int | None:
    """The host port Docker bound for ``container_port`` (None while the container is not running)."""
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    for binding in ports.get(f"{container_port}/tcp") or []:
        if binding.get("HostPort"):
            return int(binding["HostPort"])
    return None
