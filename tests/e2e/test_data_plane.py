"""Applications keep serving while the control plane is down: under a steady load through Traefik,
`berth down` (every service, NATS and Postgres stop) then `berth up` (Traefik adopted, not restarted) fail
not one request; afterwards the control plane works with the adopted Traefik (a redeploy's new content
is served), `berth down --all` stops Traefik and the application's containers, and `berth up` starts them
again."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from berth_cli.baseimages import DOCKER
from tests.e2e.conftest import make_platform, platform_teams, remove_team_resources
from tests.e2e.test_deploy_flow import wait_deployment
from tests.support.images import busybox_image, httpd_script
from tests.support.open_loop import OpenLoop

pytestmark = pytest.mark.slow

RATE = 80.0  # requests per second, open loop: each is sent on time whatever the earlier ones do
SERVE = httpd_script('mkdir -p /www && printf "%s" "$CONTENT" > /www/index.html')


async def serving_app(client: httpx.AsyncClient, name: str, image: str) -> dict:
    """An application of one web service serving "v1" at ``/`` (``SERVE``) in a new project, deployed."""
    r = await client.post("/v1/projects", json={"name": name})
    assert r.status_code == 201, r.text
    env_id = r.json()["environments"][0]["id"]
    service = {"kind": "web", "name": "web", "port": 8080, "health_path": "/", "command": ["sh", "-c", SERVE]}
    body = {
        "name": name,
        "source": {"kind": "image", "image": image},
        "services": [service],
        "env": [{"name": "CONTENT", "value": "v1"}],
        "stop_timeout_s": 5,
    }
    r = await client.post(f"/v1/environments/{env_id}/applications", json=body)
    assert r.status_code == 201, r.text
    app: dict = r.json()
    await deploy(client, app["id"])
    return app


def _containers(app_id: str, *extra: str) -> set[str]:
    argv = [DOCKER, "ps", "-q", "--no-trunc", "--filter", f"label=berth.app={app_id}", *extra]
    return set(subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout.split())


def running_containers(app_id: str) -> set[str]:
    return _containers(app_id)


def all_containers(app_id: str) -> set[str]:
    return _containers(app_id, "--all")


async def deploy(api: httpx.AsyncClient, app_id: str) -> None:
    r = await api.post(f"/v1/applications/{app_id}/deployments", json={"options": {"drain_grace_s": 1}})
    assert r.status_code == 202, r.text
    dep = await wait_deployment(api, r.json()["id"])
    assert dep["status"] == "succeeded", dep


async def test_apps_keep_serving_through_berth_down_and_up(tmp_root: Path):
    image = busybox_image()
    gen = make_platform(tmp_root / "platform-data-plane")
    platform = next(gen)
    teams: list[str] = []
    try:
        await asyncio.to_thread(platform.up)
        token = platform.paths.admin_token.read_text().strip()
        teams = platform_teams(platform)  # the platform is down at the end: its apps are removed by team here

        def api() -> httpx.AsyncClient:
            base = f"http://127.0.0.1:{platform.ports['api']}"
            return httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)

        async with api() as client:
            app = await serving_app(client, "steady", image)
        host = str(app["services"][0]["hosts"][0])
        traefik = platform.state()["children"]["traefik"]["pid"]

        load = OpenLoop(platform.ports["proxy"], host, RATE)
        runner = asyncio.create_task(load.run())
        await asyncio.sleep(1.0)
        down = await asyncio.to_thread(platform.down)
        assert "applications keep serving: traefik" in down.stdout, down.stdout
        # nothing of the control plane runs: Traefik serves on its own, and `berth status` says so
        code, status = await asyncio.to_thread(platform.status)
        assert code == 1 and status["running"] is False and status["data_plane"] == {"traefik_pid": traefik}
        await asyncio.sleep(1.0)
        await asyncio.to_thread(platform.up)
        await asyncio.sleep(1.0)
        load.stop.set()
        await runner

        assert load.errors == []
        assert load.sent >= RATE * 3 and load.seen == {"v1"}
        state = platform.state()["children"]["traefik"]
        assert state["pid"] == traefik and state["adopted"] is True  # the same Traefik, never restarted

        # the control plane reconciles with the adopted Traefik: a redeploy's new content is served
        async with api() as client:
            r = await client.patch(f"/v1/applications/{app['id']}", json={"env": [{"name": "CONTENT", "value": "v2"}]})
            assert r.status_code == 200, r.text
            await deploy(client, app["id"])
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{platform.ports['proxy']}", timeout=10) as proxy:
            assert (await proxy.get("/", headers={"Host": host})).text == "v2"

        # `berth down --all` stops the data plane too: Traefik and the application's containers (kept, not removed)
        serving = running_containers(app["id"])
        assert serving
        proc = await asyncio.to_thread(platform.down, "--all")
        assert "applications keep serving" not in proc.stdout
        assert f"stopped {len(serving)} application container(s), volumes and data kept" in proc.stdout, proc.stdout
        assert not psutil.pid_exists(traefik) or psutil.Process(traefik).status() == psutil.STATUS_ZOMBIE
        assert running_containers(app["id"]) == set() and serving <= all_containers(app["id"])

        # `berth up` starts them again (the scheduler does not start stopped replicas): served as before
        up = await asyncio.to_thread(platform.up)
        assert f"started {len(serving)} application container(s) `berth down --all` had stopped" in up.stdout
        assert running_containers(app["id"]) == serving
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{platform.ports['proxy']}", timeout=10) as proxy:
            deadline = time.monotonic() + 15
            while (got := await proxy.get("/", headers={"Host": host})).text != "v2":
                assert time.monotonic() < deadline, (got.status_code, got.text)
                await asyncio.sleep(0.2)
        await asyncio.to_thread(platform.down, "--all")
    finally:
        gen.close()
        remove_team_resources(teams)
