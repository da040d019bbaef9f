"""The whole platform, driven only through its REST API: from a git repository to a live URL through Traefik,
a redeploy that switches content with no failed request, a rollback with no build (issue 3, guarantees 1,
2 (lightly) and 5, across the real processes of `berth up`), and taking the application down (DELETE: routes,
containers and built images gone, name and host free again)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Platform
from tests.support.images import busybox_image
from tests.support.steady_load import steady_load

pytestmark = pytest.mark.slow


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def commit_site(repo: Path, body: str, base: str) -> None:
    (repo / "Dockerfile").write_text(
        f'FROM {base}\nCOPY index.html /www/index.html\nEXPOSE 8080\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n'
    )
    (repo / "index.html").write_text(body)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", body)


@pytest.fixture(scope="module")
def platform(shared_platform: Platform) -> Platform:
    return shared_platform  # its project and applications are this file's own (tests/conftest.py)


def docker_lines(*args: str) -> list[str]:
    out = subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout
    return out.split()


def site_tags() -> list[str]:
    return docker_lines("images", "--format", "{{.Repository}}:{{.Tag}}", "berth/site")


async def wait_deployment(api: httpx.AsyncClient, dep_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        dep = (await api.get(f"/v1/deployments/{dep_id}")).json()
        if dep["status"] in ("succeeded", "failed", "cancelled"):
            return dep
        assert time.monotonic() < deadline, f"deployment still {dep['status']}: {dep}"
        await asyncio.sleep(0.3)


async def test_git_to_live_url_redeploy_and_rollback(platform, tmp_path: Path):
    base = busybox_image()
    tags_before = set(site_tags())  # other applications named site (earlier runs on this engine)
    repo = tmp_path / "site"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit_site(repo, "hello v1", base)

    token = platform.paths.admin_token.read_text().strip()
    ports = platform.ports
    api = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{ports['api']}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    proxy = httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['proxy']}", timeout=10)
    try:
        r = await api.post("/v1/projects", json={"name": "shop"})
        assert r.status_code == 201, r.text
        env_id = r.json()["environments"][0]["id"]
        r = await api.post(
            f"/v1/environments/{env_id}/applications",
            json={
                "name": "site",
                "source": {"kind": "git", "repository": str(repo), "branch": "main"},
                "services": [{"kind": "web", "name": "web", "port": 8080, "health_path": "/", "replicas": 1}],
            },
        )
        assert r.status_code == 201, r.text
        app = r.json()
        host = "web-site-production.localhost"
        assert host in str(app), app

        # 1. deploy from git: a 200 with the app's content through Traefik, by the generated Host
        r = await api.post(f"/v1/applications/{app['id']}/deployments", json={"options": {"drain_grace_s": 1}})
        assert r.status_code in (201, 202), r.text
        first = await wait_deployment(api, r.json()["id"])
        assert first["status"] == "succeeded", first
        resp = await proxy.get("/", headers={"Host": host})
        assert resp.status_code == 200 and resp.text == "hello v1"
        logs = await api.get(f"/v1/deployments/{first['id']}/logs")
        assert logs.status_code == 200 and logs.text.strip(), "build and deploy log lines are served"

        # 2. redeploy changed content while requests keep flowing: no failure, content switches
        commit_site(repo, "hello v2", base)
        async with steady_load(proxy, host, settle_s=0.5) as load:
            r = await api.post(f"/v1/applications/{app['id']}/deployments", json={"options": {"drain_grace_s": 1}})
            second = await wait_deployment(api, r.json()["id"])
        assert second["status"] == "succeeded", second
        assert load.errors == []
        assert load.seen == {"hello v1", "hello v2"}
        assert (await proxy.get("/", headers={"Host": host})).text == "hello v2"

        # 5. rollback: the previous image, no build, previous content
        r = await api.post(f"/v1/applications/{app['id']}/rollback", json={"deployment_id": first["id"]})
        assert r.status_code in (201, 202), r.text
        back = await wait_deployment(api, r.json()["id"])
        assert back["status"] == "succeeded", back
        assert back["source"]["kind"] == "image"
        assert (await proxy.get("/", headers={"Host": host})).text == "hello v1"

        shown = (await api.get(f"/v1/applications/{app['id']}")).json()
        assert str(back["id"]) in str(shown)
        built = set(site_tags()) - tags_before
        assert len(built) == 2, built  # the two builds (the rollback built nothing)

        # taking it down: routes, containers and built images gone, the name and host free again
        r = await api.delete(f"/v1/applications/{app['id']}", params={"drain_grace_s": 0.2})
        assert r.status_code == 202 and r.json()["state"] == "removing", r.text
        deadline = time.monotonic() + 60
        while (await api.get(f"/v1/applications/{app['id']}")).status_code != 404:
            assert time.monotonic() < deadline, "the application was not removed in 60 s"
            await asyncio.sleep(0.3)
        assert (await proxy.get("/", headers={"Host": host})).status_code == 404
        assert docker_lines("ps", "-aq", "--filter", f"label=berth.app={app['id']}") == []
        assert set(site_tags()) == tags_before  # its builds gone, other applications' tags of the name kept
        r = await api.post(
            f"/v1/environments/{env_id}/applications",
            json={
                "name": "site",
                "source": {"kind": "image", "image": base},
                "services": [{"kind": "web", "name": "web", "port": 8080, "health_path": "/"}],
            },
        )
        assert r.status_code == 201, r.text
        assert host in str(r.json())
    finally:
        await api.aclose()
        await proxy.aclose()


async def test_cancel_through_the_api_stops_the_build(platform, tmp_path: Path):
    """POST /v1/deployments/{id}/cancel while the build runs: the deployment ends cancelled within seconds, the
    build's process is gone, and no image or container of it is left."""
    import psutil

    base = busybox_image()
    marker = f"e2e-cancel-{tmp_path.name[-12:]}"
    repo = tmp_path / "slow"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "Dockerfile").write_text(f"FROM {base}\nRUN sleep 300 && echo {marker}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "slow")

    def building() -> bool:
        return any(marker in " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"]))

    token = platform.paths.admin_token.read_text().strip()
    api = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{platform.ports['api']}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    try:
        r = await api.post("/v1/projects", json={"name": "slow"})
        env_id = r.json()["environments"][0]["id"]
        r = await api.post(
            f"/v1/environments/{env_id}/applications",
            json={
                "name": "slowapp",
                "source": {"kind": "git", "repository": str(repo), "branch": "main"},
                "services": [{"kind": "web", "name": "web", "port": 8080, "health_path": "/"}],
            },
        )
        assert r.status_code == 201, r.text
        app = r.json()
        r = await api.post(f"/v1/applications/{app['id']}/deployments", json={})
        dep_id = r.json()["id"]
        deadline = time.monotonic() + 120
        while not building():
            assert time.monotonic() < deadline, "the build's slow step never started"
            await asyncio.sleep(0.1)
        t0 = time.monotonic()
        r = await api.post(f"/v1/deployments/{dep_id}/cancel", json={"reason": "not this one"})
        assert r.status_code == 202, r.text
        dep = await wait_deployment(api, dep_id, timeout=15)
        took = time.monotonic() - t0
        assert dep["status"] == "cancelled", dep
        while building():
            assert time.monotonic() - t0 < 10, "the build still runs"
            await asyncio.sleep(0.1)
        assert took < 5.0, took
        leftovers = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=berth.app={app['id']}"], capture_output=True, text=True
        ).stdout.split()
        images = subprocess.run(
            ["docker", "images", "-q", "--filter", f"label=berth.deployment={dep_id}"], capture_output=True, text=True
        ).stdout.split()
        assert leftovers == [] and images == []
        logs = (await api.get(f"/v1/deployments/{dep_id}/logs")).text
        assert "build cancelled: not this one" in logs, logs[-2000:]
        print(f"\nMEASURED cancel through the API while building: cancelled after {took:.2f}s")
    finally:
        await api.aclose()
