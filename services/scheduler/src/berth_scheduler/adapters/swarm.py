"""The Swarm executor: posts :mod:`berth_scheduler.domain.swarm` bodies to a manager's (or joining node's)
Engine API at a unix socket (the local engine's, or a server's forwarded over SSH)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from berth_common.docker import API_VERSION, DockerUnavailable, EngineApi, EngineError

API = f"/{API_VERSION}"


class SwarmError(RuntimeError):
    """The engine refused a Swarm operation; the message carries its reason."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class SwarmEngine:
    def __init__(self, socket_path: str, timeout: float = 60.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        async with EngineApi.on_unix(self.socket_path, API_VERSION, timeout_s=self.timeout) as http:
            try:
                _, raw = await http.request(
                    method, f"{API}{path}", body=body, params=params, headers=headers, versioned=False
                )
            except EngineError as exc:
                raise SwarmError(f"{method} {path}: {exc.message}", exc.status) from None
            except DockerUnavailable as exc:
                raise ConnectionError(f"{method} {path}: {exc}") from exc
            text = raw.decode("utf-8", "replace")
            return json.loads(text) if text.strip() else None

    async def _found(self, method: str, path: str, params: dict[str, str] | None = None) -> Any:
        """The answer, or None when the engine has no such thing (404)."""
        try:
            return await self._call(method, path, params=params)
        except SwarmError as exc:
            if exc.status == 404:
                return None
            raise

    async def info(self) -> dict[str, Any]:
        """``GET /info``: its ``Swarm`` part says where this engine stands in a Swarm."""
        return dict(await self._call("GET", "/info"))

    async def network(self, name: str) -> dict[str, Any] | None:
        found = await self._found("GET", f"/networks/{quote(name, safe='')}")
        return None if found is None else dict(found)

    async def service(self, name: str) -> dict[str, Any] | None:
        found = await self._found("GET", f"/services/{quote(name, safe='')}")
        return None if found is None else dict(found)

    async def services(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        """Every service with all of ``labels``."""
        filters = json.dumps({"label": [f"{k}={v}" for k, v in sorted(labels.items())]})
        return list(await self._call("GET", "/services", params={"filters": filters}))

    async def init(self, body: dict[str, Any]) -> str:
        """Make this engine the first manager; returns its node id."""
        return str(await self._call("POST", "/swarm/init", body))

    async def join_token(self) -> str:
        swarm = await self._call("GET", "/swarm")
        return str(swarm["JoinTokens"]["Worker"])

    async def join(self, body: dict[str, Any]) -> None:
        await self._call("POST", "/swarm/join", body)

    async def leave(self, force: bool = True) -> None:
        await self._call("POST", "/swarm/leave", params={"force": "1" if force else "0"})

    async def nodes(self) -> list[dict[str, Any]]:
        return list(await self._call("GET", "/nodes"))

    async def create_network(self, body: dict[str, Any]) -> str:
        return str((await self._call("POST", "/networks/create", body))["Id"])

    async def create_service(self, body: dict[str, Any], registry_auth: str | None = None) -> str:
        """Create the service; one of that name already there is the same service (a retry): its id.
        ``registry_auth`` (``X-Registry-Auth``) is kept by Swarm for its nodes' pulls of the image."""
        headers = {"X-Registry-Auth": registry_auth} if registry_auth else None
        try:
            return str((await self._call("POST", "/services/create", body, headers=headers))["ID"])
        except SwarmError as exc:
            existing = await self.service(str(body.get("Name", ""))) if exc.status == 409 else None
            if existing is None:
                raise
            return str(existing["ID"])

    async def remove_service(self, name: str) -> None:
        try:
            await self._call("DELETE", f"/services/{quote(name, safe='')}")
        except SwarmError as exc:
            if exc.status != 404:
                raise

    async def tasks(self, service: str) -> list[dict[str, Any]]:
        filters = json.dumps({"service": [service]})
        return list(await self._call("GET", "/tasks", params={"filters": filters}))

    async def update_service(self, name: str, spec: dict[str, Any], version: int) -> None:
        """``POST /services/{name}/update`` with ``spec`` at the service's ``version`` index."""
        await self._call("POST", f"/services/{quote(name, safe='')}/update", spec, params={"version": str(version)})

    async def create_secret(self, body: dict[str, Any]) -> str:
        """Create the secret; one of that name already there is the same secret (its name is its content's
        digest): its id."""
        try:
            return str((await self._call("POST", "/secrets/create", body))["ID"])
        except SwarmError as exc:
            if exc.status != 409:
                raise
        name = str(body.get("Name", ""))
        filters = json.dumps({"name": [name]})
        found = [
            x for x in await self._call("GET", "/secrets", params={"filters": filters}) if x["Spec"]["Name"] == name
        ]
        if not found:
            raise SwarmError(f"secret {name} exists and cannot be found", 409)
        return str(found[0]["ID"])

    async def secrets(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        """Every secret with all of ``labels`` (their data is never answered)."""
        filters = json.dumps({"label": [f"{k}={v}" for k, v in sorted(labels.items())]})
        return list(await self._call("GET", "/secrets", params={"filters": filters}))

    async def remove_secret(self, secret_id: str) -> bool:
        """Remove the secret; False when a service still uses it (Swarm refuses) or it is gone already."""
        try:
            await self._call("DELETE", f"/secrets/{quote(secret_id, safe='')}")
            return True
        except SwarmError as exc:
            if exc.status in (404, 400, 409):
                return False
            raise

    async def image_id(self, reference: str) -> str | None:
        """The id of the engine's image ``reference``; None when it has none of that name."""
        found = await self._found("GET", f"/images/{quote(reference, safe='')}/json")
        return None if found is None else str(found["Id"])

    async def container(self, name: str) -> dict[str, Any] | None:
        """``GET /containers/{name}/json`` of this engine's container; None when it has none of that name."""
        found = await self._found("GET", f"/containers/{quote(name, safe='')}/json")
        return None if found is None else dict(found)

    async def create_container(self, name: str, body: dict[str, Any]) -> None:
        """Create the container ``name``; one made meanwhile under that name (409) is the same container."""
        try:
            await self._call("POST", "/containers/create", body=body, params={"name": name})
        except SwarmError as exc:
            if exc.status != 409:
                raise

    async def start_container(self, name: str) -> None:
        await self._call("POST", f"/containers/{quote(name, safe='')}/start")

    async def remove_container(self, name: str) -> None:
        """Remove (force) the container ``name``; one already gone is removed."""
        await self._found("DELETE", f"/containers/{quote(name, safe='')}", params={"force": "1"})

    async def remove_labelled(self, label: str) -> list[str]:
        """Remove (force) every container of this engine that has ``label``; the names removed."""
        filters = json.dumps({"label": [label]})
        found = await self._call("GET", "/containers/json", params={"all": "1", "filters": filters})
        names = []
        for container in found or []:
            await self._found("DELETE", f"/containers/{quote(str(container['Id']), safe='')}", params={"force": "1"})
            names.append(str((container.get("Names") or [""])[0]).lstrip("/"))
        return names
