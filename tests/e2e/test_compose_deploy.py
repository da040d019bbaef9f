"""A compose application deployed through the REST API across the real processes of `berth up` (issue 14):
four services of local images (a web service, a worker, a db-like service with a volume and a healthcheck,
a one-shot migration), started in their depends_on order on the application's private network, until the
web host answers 200 through Traefik. A second deployment that changes only the web service keeps the
stateful service's container (same id, same data) and the web host never stops answering; a kept
container that stopped meanwhile is made again on its volume."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import httpx
import pytest

from benchmarks.support.compose_stack import compose_file
from tests.e2e.conftest import Platform
from tests.e2e.test_deploy_flow import wait_deployment
from tests.support.images import busybox_image
from tests.support.steady_load import steady_load

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def platform(shared_platform: Platform) -> Platform:
    return shared_platform  # its projects and applications are this file's own (tests/conftest.py)


def docker(*args: str) -> str:
    out = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def containers_of(app_id: str) -> dict[str, dict]:
    """The application's containers by name: service, state, id."""
    ids = docker("ps", "-aq", "--filter", f"label=berth.app={app_id}").split()
    found = json.loads(docker("inspect", *ids)) if ids else []
    return {
        c["Name"].lstrip("/"): {
            "service": c["Config"]["Labels"]["berth.service"],
            "state": c["State"]["Status"],
            "exit": c["State"]["ExitCode"],
            "id": c["Id"],
            "started": c["State"]["StartedAt"],
            "networks": sorted(c["NetworkSettings"]["Networks"]),
        }
        for c in found
    }


async def test_a_compose_app_deploys_in_order_and_keeps_its_stateful_service(platform, unique: str):
    base = busybox_image()
    web_image = f"berth/compose-e2e-{unique}:1"
    docker("tag", base, web_image)  # the web service's own image (the others run the base image)
    token = platform.paths.admin_token.read_text().strip()
    api = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{platform.ports['api']}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    proxy = httpx.AsyncClient(base_url=f"http://127.0.0.1:{platform.ports['proxy']}", timeout=10)
    app_id = volume = None
    try:
        r = await api.post("/v1/projects", json={"name": f"stack-{unique}"})
        assert r.status_code == 201, r.text
        env_id = r.json()["environments"][0]["id"]
        body = {
            "name": "stack",
            "compose": {"inline": compose_file(web_image, base, "v1")},
            "hosts": [{"service": "web", "port": 8080}],
            "stop_timeout_s": 2,
        }
        r = await api.post(f"/v1/environments/{env_id}/applications", json=body)
        assert r.status_code == 201, r.text
        app = r.json()
        app_id = app["id"]
        volume = f"berth-{app_id}-db-data"
        assert app["compose"]["translated"]["start_order"] == [["db"], ["migrate"], ["web"], ["worker"]]
        host = app["services"][0]["hosts"][0]

        # 1. the first deployment: every service in its order, the web host answers through Traefik
        r = await api.post(f"/v1/applications/{app_id}/deployments", json={"options": {"drain_grace_s": 0.5}})
        assert r.status_code == 202, r.text
        first = await wait_deployment(api, r.json()["id"])
        assert first["status"] == "succeeded", first
        resp = await proxy.get("/", headers={"Host": host})
        assert resp.status_code == 200 and resp.text == "v1"
        created = (await proxy.get("/db.txt", headers={"Host": host})).text.strip()
        assert len(created) == 36, created  # the web read the db through its alias on the private network
        running = containers_of(app_id)
        by_service = {c["service"]: c for c in running.values()}
        assert set(by_service) == {"web", "worker", "db", "migrate"}
        assert by_service["migrate"]["state"] == "exited" and by_service["migrate"]["exit"] == 0
        assert all(by_service[s]["state"] == "running" for s in ("web", "worker", "db"))
        assert all(f"berth-app-{app_id}" in c["networks"] for c in running.values())
        started = {s: by_service[s]["started"] for s in by_service}
        assert started["db"] < started["migrate"] < started["web"] < started["worker"]  # the depends_on order
        db_before = by_service["db"]["id"]

        # 2. only the web service changes: the db is kept (same container, same data), no failed request
        changed = compose_file(web_image, base, "v2")
        r = await api.patch(f"/v1/applications/{app_id}", json={"compose": {"inline": changed}})
        assert r.status_code == 200, r.text
        async with steady_load(proxy, host, settle_s=0.3) as load:
            r = await api.post(f"/v1/applications/{app_id}/deployments", json={"options": {"drain_grace_s": 0.5}})
            assert r.status_code == 202, r.text
            second = await wait_deployment(api, r.json()["id"])
        assert second["status"] == "succeeded", second
        assert load.errors == []
        assert load.seen == {"v1", "v2"}
        assert (await proxy.get("/db.txt", headers={"Host": host})).text.strip() == created
        after = {c["service"]: c for c in containers_of(app_id).values()}
        assert after["db"]["id"] == db_before and after["db"]["state"] == "running"
        assert after["web"]["id"] != by_service["web"]["id"]
        assert len(containers_of(app_id)) == 4  # the old web, worker and migration are gone

        # 3. a kept service whose container stopped meanwhile is made again (on the same volume)
        docker("stop", "-t", "1", db_before)
        r = await api.post(f"/v1/applications/{app_id}/deployments", json={"options": {"drain_grace_s": 0.2}})
        third = await wait_deployment(api, r.json()["id"])
        assert third["status"] == "succeeded", third
        again = {c["service"]: c for c in containers_of(app_id).values()}
        assert again["db"]["id"] != db_before and again["db"]["state"] == "running"
        assert len(containers_of(app_id)) == 4
        assert (await proxy.get("/db.txt", headers={"Host": host})).text.strip() == created

        # 4. taken down: containers and the private network gone
        r = await api.delete(f"/v1/applications/{app_id}", params={"drain_grace_s": 0.2})
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 60
        while (await api.get(f"/v1/applications/{app_id}")).status_code != 404:
            assert time.monotonic() < deadline, "the application was not removed in 60 s"
            await asyncio.sleep(0.3)
        assert containers_of(app_id) == {}
        assert docker("network", "ls", "-q", "--filter", f"name=berth-app-{app_id}") == ""
        app_id = None
    finally:
        await api.aclose()
        await proxy.aclose()
        if app_id is not None:
            ids = docker("ps", "-aq", "--filter", f"label=berth.app={app_id}").split()
            if ids:
                subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, timeout=60)
            subprocess.run(["docker", "network", "rm", f"berth-app-{app_id}"], capture_output=True, timeout=60)
        if volume is not None:
            subprocess.run(["docker", "volume", "rm", volume], capture_output=True, timeout=60)
        subprocess.run(["docker", "rmi", web_image], capture_output=True, timeout=60)


async def test_a_dependency_that_fails_fails_the_deployment_naming_it(platform, unique: str):
    """A one-shot migration that exits 1: the web service that waits for it never starts, and the
    deployment fails with a reason naming the migration and its exit code; its containers are removed."""
    base = busybox_image()
    text = compose_file(base, base, "v1").replace(
        '["wget", "-q", "-O", "/dev/null", "http://db:8080/ready"]', '["sh", "-c", "exit 1"]'
    )
    token = platform.paths.admin_token.read_text().strip()
    api = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{platform.ports['api']}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    app_id = None
    try:
        r = await api.post("/v1/projects", json={"name": f"broken-{unique}"})
        env_id = r.json()["environments"][0]["id"]
        body = {"name": "broken", "compose": {"inline": text}, "hosts": [{"service": "web", "port": 8080}]}
        r = await api.post(f"/v1/environments/{env_id}/applications", json=body)
        assert r.status_code == 201, r.text
        app_id = r.json()["id"]
        r = await api.post(f"/v1/applications/{app_id}/deployments")
        dep = await wait_deployment(api, r.json()["id"])
        assert dep["status"] == "failed", dep
        assert "web cannot start: service migrate did not complete successfully: it exited with code 1" in (
            dep["reason"] or dep["detail"]
        ), dep
        assert containers_of(app_id) == {}  # the failed deployment's containers are removed
    finally:
        await api.aclose()
        if app_id is not None:
            ids = docker("ps", "-aq", "--filter", f"label=berth.app={app_id}").split()
            if ids:
                subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, timeout=60)
            subprocess.run(["docker", "network", "rm", f"berth-app-{app_id}"], capture_output=True, timeout=60)
            subprocess.run(["docker", "volume", "rm", f"berth-{app_id}-db-data"], capture_output=True, timeout=60)
