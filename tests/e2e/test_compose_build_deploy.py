"""A compose application whose services build their own images from two contexts of its git repository,
deployed through the REST API across the real processes of `berth up` (issue 14, ``build:`` sections): the
builder builds one image per service (``berth/<app>-<service>:<deployment>``), the scheduler waits for both
and runs each service with its own image next to a service of a prebuilt image; both built services
answer through Traefik. A broken Dockerfile in one context fails the next deployment naming that service,
and the running version keeps answering; cancelling a deployment while both build stops both builds; taking
the application down removes the images its services were built into."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.builder.test_cancel import processes_with, wait_for
from tests.e2e.conftest import Platform
from tests.e2e.test_compose_deploy import docker
from tests.e2e.test_deploy_flow import git, wait_deployment
from tests.support.images import busybox_image

pytestmark = pytest.mark.slow

SERVE = 'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]'


@pytest.fixture(scope="module")
def platform(shared_platform: Platform) -> Platform:
    return shared_platform  # its project and applications are this file's own (tests/conftest.py)


def compose_text(base: str) -> str:
    return f"""services:
  front:
    build: ./front
    ports: ["8080"]
    depends_on: [back]
  back:
    build:
      context: ./back
      dockerfile: Backfile
      args:
        GREETING: hello-from-back
    ports: ["8080"]
  cache:
    image: {base}
    command: ["sh", "-c", "mkdir -p /www && echo cache > /www/index.html && exec httpd -f -p 8080 -h /www"]
"""


def write_repo(repo: Path, base: str, back_extra: str = "", front_extra: str = "") -> None:
    (repo / "front").mkdir(parents=True, exist_ok=True)
    (repo / "back").mkdir(parents=True, exist_ok=True)
    (repo / "front" / "Dockerfile").write_text(f"FROM {base}\nCOPY index.html /www/index.html\n{front_extra}{SERVE}\n")
    (repo / "front" / "index.html").write_text("front v1")
    (repo / "back" / "Backfile").write_text(
        f'FROM {base}\nARG GREETING\nRUN mkdir -p /www && printf %s "$GREETING" > /www/index.html\n{back_extra}{SERVE}\n'
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "stack")


def clients(platform) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    """The api (as the administrator) and the proxy of ``platform``."""
    token = platform.paths.admin_token.read_text().strip()
    api = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{platform.ports['api']}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    return api, httpx.AsyncClient(base_url=f"http://127.0.0.1:{platform.ports['proxy']}", timeout=10)


async def create_stack(api: httpx.AsyncClient, project: str, name: str, repo: Path, base: str) -> dict:
    """A new project and in it the application of ``compose_text`` built from ``repo`` (front and back get
    hosts): the created application."""
    r = await api.post("/v1/projects", json={"name": project})
    assert r.status_code == 201, r.text
    env_id = r.json()["environments"][0]["id"]
    body = {
        "name": name,
        "source": {"kind": "git", "repository": str(repo), "branch": "main"},
        "compose": {"inline": compose_text(base)},
        "hosts": [{"service": "front", "port": 8080}, {"service": "back", "port": 8080}],
        "stop_timeout_s": 2,
    }
    r = await api.post(f"/v1/environments/{env_id}/applications", json=body)
    assert r.status_code == 201, r.text
    app: dict = r.json()
    return app


def leftovers_removed(app_id: str | None, name: str) -> None:
    """The application's containers and its services' images, whatever a failed test left."""
    if app_id is not None:
        ids = docker("ps", "-aq", "--filter", f"label=berth.app={app_id}").split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, timeout=60)
    for service in ("front", "back"):
        tags = docker("images", "--format", "{{.Repository}}:{{.Tag}}", f"berth/{name}-{service}").split()
        if tags:
            subprocess.run(["docker", "rmi", "-f", *tags], capture_output=True, timeout=60)


def containers_of(app_id: str) -> dict[str, dict]:
    """The application's containers by service: image, state, deployment."""
    ids = docker("ps", "-aq", "--filter", f"label=berth.app={app_id}").split()
    found = json.loads(docker("inspect", *ids)) if ids else []
    return {
        c["Config"]["Labels"]["berth.service"]: {
            "image": c["Config"]["Image"],
            "state": c["State"]["Status"],
            "deployment": c["Config"]["Labels"].get("berth.deployment"),
        }
        for c in found
    }


async def test_compose_services_built_from_two_contexts_deploy_and_a_broken_one_fails_naming_it(
    platform, tmp_path: Path, unique: str
):
    base = busybox_image()
    repo = tmp_path / "stack"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write_repo(repo, base)
    name = f"cb{unique}"[:20]
    api, proxy = clients(platform)
    app_id = None
    try:
        app = await create_stack(api, f"builds-{unique}", name, repo, base)
        app_id = app["id"]
        hosts = {s["name"]: s["hosts"][0] for s in app["services"] if s.get("hosts")}
        assert set(hosts) == {"front", "back"}

        # 1. two builds, one per service, then every service runs: both built services answer
        r = await api.post(f"/v1/applications/{app_id}/deployments", json={"options": {"drain_grace_s": 0.2}})
        assert r.status_code == 202, r.text
        spec = {s["name"]: s for s in r.json()["spec"]["services"]}
        assert spec["front"]["build"] == {"subdirectory": "front", "dockerfile": "Dockerfile"}
        assert spec["back"]["build"] == {
            "subdirectory": "back",
            "dockerfile": "Backfile",
            "build_args": [{"name": "GREETING", "value": "hello-from-back", "secret": False}],
        }
        first = await wait_deployment(api, r.json()["id"], timeout=240)
        assert first["status"] == "succeeded", first
        for service, text in (("front", "front v1"), ("back", "hello-from-back")):
            resp = await proxy.get("/", headers={"Host": hosts[service]})
            assert (resp.status_code, resp.text) == (200, text), service
        running = containers_of(app_id)
        assert set(running) == {"front", "back", "cache"}
        assert all(c["state"] == "running" for c in running.values()), running
        short = first["id"].replace("-", "")[:8]
        assert running["front"]["image"] == f"berth/{name}-front:{short}"
        assert running["back"]["image"] == f"berth/{name}-back:{short}"
        assert running["cache"]["image"] == base
        labels = json.loads(docker("image", "inspect", f"berth/{name}-back:{short}"))[0]["Config"]["Labels"]
        assert labels.get("berth.service") == "back"
        logs = (await api.get(f"/v1/deployments/{first['id']}/logs")).text
        assert "[front] " in logs and "[back] " in logs, logs[-2000:]

        # 2. a broken Dockerfile in one context fails the deployment naming that service; v1 keeps serving
        write_repo(repo, base, back_extra="RUN exit 3\n")
        r = await api.post(f"/v1/applications/{app_id}/deployments", json={"options": {"drain_grace_s": 0.2}})
        assert r.status_code == 202, r.text
        failed = await wait_deployment(api, r.json()["id"], timeout=240)
        assert failed["status"] == "failed", failed
        reason = failed["reason"] or ""
        assert "the build of service back failed" in reason, failed
        assert "front" not in reason.split("failed")[0]
        for service, text in (("front", "front v1"), ("back", "hello-from-back")):
            resp = await proxy.get("/", headers={"Host": hosts[service]})
            assert (resp.status_code, resp.text) == (200, text), service
        assert {c["deployment"] for c in containers_of(app_id).values()} == {first["id"]}

        # 3. cancelling the deployment while both services build stops both builds
        marker = f"cb{unique}slow"
        write_repo(
            repo,
            base,
            back_extra=f"RUN sleep 301 && echo {marker}b\n",
            front_extra=f"RUN sleep 302 && echo {marker}f\n",
        )
        r = await api.post(f"/v1/applications/{app_id}/deployments", json={"options": {"drain_grace_s": 0.2}})
        assert r.status_code == 202, r.text
        dep_id = r.json()["id"]
        await wait_for(lambda: len(processes_with(marker)) >= 2, 120, "both slow RUN steps")
        r = await api.post(f"/v1/deployments/{dep_id}/cancel")
        assert r.status_code in (200, 202), r.text
        cancelled = await wait_deployment(api, dep_id, timeout=30)
        assert cancelled["status"] == "cancelled", cancelled
        await wait_for(lambda: not processes_with(marker), 30, "both builds stopped")
        for service, text in (("front", "front v1"), ("back", "hello-from-back")):
            resp = await proxy.get("/", headers={"Host": hosts[service]})
            assert (resp.status_code, resp.text) == (200, text), service
        print(f"\nMEASURED compose builds: first deployment {first.get('duration_s')}s")

        # 4. taken down: the images its services were built into go with it
        r = await api.delete(f"/v1/applications/{app_id}", params={"drain_grace_s": 0.2})
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 60
        while (await api.get(f"/v1/applications/{app_id}")).status_code != 404:
            assert time.monotonic() < deadline, "the application was not removed in 60 s"
            await asyncio.sleep(0.3)
        for service in ("front", "back"):
            assert docker("images", "-q", f"berth/{name}-{service}") == "", service
    finally:
        await api.aclose()
        await proxy.aclose()
        leftovers_removed(app_id, name)
