"""The whole platform as a user runs it: ``berth up`` on a temporary data dir and a free port range.

``BerthUp`` starts it, knows its ports and admin token, and on ``stop()`` runs ``berth down --all``, kills any
process of that data dir still alive and removes the containers of every application the benchmark made
(by their ``berth.app`` label, never anyone else's). ``Api`` is a thin client of the REST API.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.support import LOOPBACK_ALLOWED
from berth_cli import baseimages, components
from berth_cli.layout import Paths, resolve_ports
from berth_cli.platform import free_port_base, leftovers

DOCKER = baseimages.DOCKER
BUSYBOX = baseimages.BUSYBOX_IMAGE
# busybox httpd serving $CONTENT at / once it listens (the same command for Berth and for docker run)
SERVE_CONTENT = 'mkdir -p /www && printf "%s\\n" "$CONTENT" > /www/index.html && exec httpd -f -p 8080 -h /www'


def busybox_image() -> str:
    baseimages.ensure_base_images([BUSYBOX])
    return BUSYBOX


def remove_containers(label: str) -> int:
    """Remove (force) every container carrying ``label`` (``key=value``)."""
    ids = subprocess.run(
        [DOCKER, "ps", "-aq", "--filter", f"label={label}"], capture_output=True, text=True, check=False, timeout=60
    ).stdout.split()
    if ids:
        subprocess.run([DOCKER, "rm", "-f", *ids], capture_output=True, check=False, timeout=120)
    return len(ids)


@dataclass
class BerthUp:
    """A running platform (split mode unless ``all_in_one``); use as a context manager."""

    all_in_one: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="berth-bench-")))
    apps: list[str] = field(default_factory=list)
    up_s: float = 0.0

    def __post_init__(self) -> None:
        self.root.chmod(0o755)
        self.paths = Paths(self.root / "data")
        env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
        self.env = {**env, **LOOPBACK_ALLOWED, "BERTH_PORT_BASE": str(free_port_base()), **self.extra_env}
        self.ports = resolve_ports(self.env)

    def berth(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        argv = [components.bin_path("berth"), *args, "--data-dir", str(self.paths.root)]
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)

    def start(self) -> BerthUp:
        t0 = time.monotonic()
        up = self.berth("up", *(["--all-in-one"] if self.all_in_one else []))
        if up.returncode != 0:
            self.stop()
            raise RuntimeError(f"berth up failed:\n{up.stdout}\n{up.stderr}")
        self.up_s = time.monotonic() - t0
        return self

    def stop(self) -> None:
        try:
            self.berth("down", "--all")
        finally:
            for p in leftovers(self.paths.root):
                p.kill()
            for app in self.apps:
                remove_containers(f"berth.app={app}")
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> BerthUp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def token(self) -> str:
        return self.paths.admin_token.read_text().strip()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.ports['nats']}"

    def bus_identity(self, user: str) -> dict[str, str]:
        """``user=``, ``password=`` of one of the platform's bus identities (``berth_cli.nats_auth``)."""
        from berth_cli import nats_auth

        return {"user": user, "password": nats_auth.ensure_passwords(self.paths.root)[user]}

    @property
    def events_url(self) -> str:
        """The bus's URL as the ``observer`` identity: every event as it is published (``EventLog``)."""
        from berth_cli import nats_auth

        return nats_auth.with_credentials(self.nats_url, **self.bus_identity("observer"))

    @property
    def proxy_port(self) -> int:
        return self.ports["proxy"]

    @property
    def traefik_api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['traefik_api']}"

    @property
    def traefik_api_auth(self) -> tuple[str, str]:
        """proxy-sync's credentials for Traefik's API (the password derives from the secret key)."""
        from berth_proxy_sync.domain.routes import API_USER, api_password

        return API_USER, api_password(self.paths.secret_key.read_text().strip())

    def log(self, name: str) -> Path:
        return self.paths.log(name)


class Api:
    """The REST API with the admin token (every call raises on an unexpected status)."""

    def __init__(self, platform: BerthUp, timeout: float = 30.0) -> None:
        self.platform = platform
        self.client = httpx.AsyncClient(
            base_url=platform.api_url,
            headers={"Authorization": f"Bearer {platform.token}"},
            trust_env=False,
            timeout=timeout,
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def _call(self, method: str, url: str, expect: int, body: Any = None) -> Any:
        resp = await self.client.request(method, url, json=body)
        if resp.status_code != expect:
            raise RuntimeError(f"{method} {url}: HTTP {resp.status_code}: {resp.text[:1000]}")
        return resp.json()

    async def environment(self, project: str) -> str:
        """A new project; the id of its ``production`` environment."""
        out = await self._call("POST", "/v1/projects", 201, {"name": project})
        return str(out["environments"][0]["id"])

    async def web_app(self, environment_id: str, name: str, content: str, image: str = BUSYBOX) -> dict[str, Any]:
        """A web application serving ``content`` at / (busybox httpd, readiness GET /); its containers are
        removed when the platform stops."""
        body = {
            "name": name,
            "source": {"kind": "image", "image": image},
            "services": [
                {
                    "kind": "web",
                    "name": "web",
                    "port": 8080,
                    "health_path": "/",
                    "command": ["sh", "-c", SERVE_CONTENT],
                }
            ],
            "env": [{"name": "CONTENT", "value": content}],
            "stop_timeout_s": 5,
        }
        app: dict[str, Any] = await self._call("POST", f"/v1/environments/{environment_id}/applications", 201, body)
        self.platform.apps.append(app["id"])
        return app

    async def set_content(self, app_id: str, content: str) -> None:
        await self._call("PATCH", f"/v1/applications/{app_id}", 200, {"env": [{"name": "CONTENT", "value": content}]})

    async def deploy(self, app_id: str, **options: Any) -> dict[str, Any]:
        out: dict[str, Any] = await self._call(
            "POST", f"/v1/applications/{app_id}/deployments", 202, {"options": options}
        )
        return out

    async def deployment(self, deployment_id: str) -> dict[str, Any]:
        out: dict[str, Any] = await self._call("GET", f"/v1/deployments/{deployment_id}", 200)
        return out


def host_of(app: dict[str, Any]) -> str:
    """The generated host of the application's web service."""
    return str(app["services"][0]["hosts"][0])


async def measured_on_platform(
    measure: Callable[[BerthUp], Awaitable[dict[str, Any]]], *, all_in_one: bool = False
) -> dict[str, Any]:
    """``measure`` run on a platform started for it (split mode unless ``all_in_one``; the busybox image
    made first) and stopped after; its result plus ``load_avg_1m`` (before, after) to read it by."""
    busybox_image()
    load_before = os.getloadavg()[0]
    platform = await asyncio.to_thread(BerthUp(all_in_one=all_in_one).start)
    try:
        result = await measure(platform)
    finally:
        await asyncio.to_thread(platform.stop)
    return {**result, "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
