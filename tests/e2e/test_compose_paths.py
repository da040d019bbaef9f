"""Path routes of a compose application across the real processes of `berth up` (issue 14): one host, two
services of local images, `/` answered by one container and `/api` by another through the real Traefik,
the path reaching the api container unstripped. A new version of the api service rolls out under load on
both paths with no failed request, and scaling it adds a replica to its path route."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time

import httpx
import pytest

from benchmarks.support.compose_stack import _quoted
from tests.e2e.conftest import Platform
from tests.e2e.test_deploy_flow import wait_deployment
from tests.support.images import busybox_image

pytestmark = pytest.mark.slow

FRONT = "mkdir -p /www && printf %s FRONT > /www/index.html && exec httpd -f -p 8080 -h /www"
# the api serves /api/... from /www/api: a request stripped of its prefix would find nothing there
API = (
    'mkdir -p /www/api && printf %s root > /www/index.html && printf %s "API $$VERSION $$(hostname)" > '
    "/www/api/index.html && printf %s users > /www/api/users.txt && exec httpd -f -p 8080 -h /www"
)


def compose_file(image: str, version: str) -> str:
    return f"""services:
  front:
    image: {image}
    command: ["sh", "-c", {_quoted(FRONT)}]
    ports: ["8080"]
  api:
    image: {image}
    command: ["sh", "-c", {_quoted(API)}]
    environment:
      VERSION: "{version}"
    expose: ["8080"]
"""


@pytest.fixture(scope="module")
def platform(shared_platform: Platform) -> Platform:
    return shared_platform  # its project and applications are this file's own (tests/conftest.py)


def _remove_leftovers(app_id: str) -> None:
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=berth.app={app_id}"], capture_output=True, text=True, timeout=60
    )
    if out.stdout.split():
        subprocess.run(["docker", "rm", "-f", *out.stdout.split()], capture_output=True, timeout=60)
    subprocess.run(["docker", "network", "rm", f"berth-app-{app_id}"], capture_output=True, timeout=60)


async def test_one_host_two_services_by_path(platform, unique: str):
    image = busybox_image()
    token = platform.paths.admin_token.read_text().strip()
    api = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{platform.ports['api']}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    proxy = httpx.AsyncClient(base_url=f"http://127.0.0.1:{platform.ports['proxy']}", timeout=10)
    app_id = None
    try:
        r = await api.post("/v1/projects", json={"name": f"paths-{unique}"})
        assert r.status_code == 201, r.text
        env_id = r.json()["environments"][0]["id"]
        body = {
            "name": "paths",
            "compose": {"inline": compose_file(image, "v1")},
            "hosts": [{"service": "front", "port": 8080}],
            "stop_timeout_s": 1,
        }
        r = await api.post(f"/v1/environments/{env_id}/applications", json=body)
        assert r.status_code == 201, r.text
        app_id = r.json()["id"]
        host = r.json()["services"][0]["hosts"][0]  # the front's generated host, shared with the api by path
        hosts = [{"service": "front", "port": 8080}, {"service": "api", "port": 8080, "host": host, "path": "/api"}]
        r = await api.patch(f"/v1/applications/{app_id}", json={"hosts": hosts})
        assert r.status_code == 200, r.text

        async def get(path: str) -> tuple[int, str]:
            got = await proxy.get(path, headers={"Host": host})
            return got.status_code, got.text

        # 1. the first deployment: one host, `/` to the front, `/api` to the api (unstripped)
        r = await api.post(f"/v1/applications/{app_id}/deployments", json={"options": {"drain_grace_s": 0.3}})
        assert r.status_code == 202, r.text
        first = await wait_deployment(api, r.json()["id"])
        assert first["status"] == "succeeded", first
        assert await get("/") == (200, "FRONT")
        status, text = await get("/api/")
        assert status == 200 and text.startswith("API v1 "), text
        assert await get("/api/users.txt") == (200, "users")
        assert (await get("/users.txt"))[0] == 404  # the front's: the api's files are under /api only

        # 2. a new version of the api rolls out under load on both paths: no failed request
        errors: list[str] = []
        seen: dict[str, set[str]] = {"/": set(), "/api/": set()}
        stop = asyncio.Event()

        async def load(path: str) -> None:
            while not stop.is_set():
                try:
                    status, text = await get(path)
                    if status == 200:
                        seen[path].add(text.split(" ")[0] + (" " + text.split(" ")[1] if " " in text else ""))
                    else:
                        errors.append(f"{path} {status}")
                except httpx.HTTPError as exc:
                    errors.append(f"{path} {type(exc).__name__}")
                await asyncio.sleep(0.01)

        r = await api.patch(f"/v1/applications/{app_id}", json={"compose": {"inline": compose_file(image, "v2")}})
        assert r.status_code == 200, r.text
        tasks = [asyncio.create_task(load(p)) for p in seen]
        try:
            r = await api.post(f"/v1/applications/{app_id}/deployments", json={"options": {"drain_grace_s": 0.5}})
            assert r.status_code == 202, r.text
            second = await wait_deployment(api, r.json()["id"])
            await asyncio.sleep(0.3)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        assert second["status"] == "succeeded", second
        assert errors == []
        assert seen == {"/": {"FRONT"}, "/api/": {"API v1", "API v2"}}

        # 3. scaling the api: its new replica joins the path route
        r = await api.post(f"/v1/applications/{app_id}/scale", json={"services": {"api": 2}})
        assert r.status_code == 202, r.text
        answered: set[str] = set()
        deadline = time.monotonic() + 90
        while len(answered) < 2:
            assert time.monotonic() < deadline, f"one replica answered /api/ only: {answered}"
            status, text = await get("/api/")
            if status == 200 and text.startswith("API v2 "):
                answered.add(text)
            await asyncio.sleep(0.05)
        assert await get("/") == (200, "FRONT")

        r = await api.delete(f"/v1/applications/{app_id}", params={"drain_grace_s": 0.2})
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 60
        while (await api.get(f"/v1/applications/{app_id}")).status_code != 404:
            assert time.monotonic() < deadline, "the application was not removed in 60 s"
            await asyncio.sleep(0.3)
        assert (await get("/api/"))[0] == 404
        app_id = None
    finally:
        await api.aclose()
        await proxy.aclose()
        if app_id is not None:
            with contextlib.suppress(Exception):
                _remove_leftovers(app_id)
