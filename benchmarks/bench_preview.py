"""Preview environments: a pull request's preview made and destroyed across the real processes of
``berth up`` (api, builder, scheduler, proxy-sync, Traefik, Docker), and what is left after it counted.

A git repository on disk (``BERTH_ALLOW_LOCAL_GIT``) has a ``main`` branch and a ``feature`` branch whose
site says ``preview``. The application (a web service with a named volume) gets a webhook and preview
settings with a fresh PostgreSQL database per preview. A signed GitHub ``pull_request`` delivery
(``opened``, head ``feature``) is sent to the webhook's URL:

- ``create_s``: from sending it to the preview's host (``pr-<number>-<app>.localhost``) answering 200 with
  the feature branch's content through Traefik: the preview application made, its database made and
  linked, the head commit built and rolled out, the route live.
- ``update_s``: from sending the ``synchronize`` delivery of a second commit pushed to the pull request
  (its site says ``preview 2``) to the preview's host answering with it; ``failed_during_update``: the
  requests to the host that did not answer 200 while it switched (an open-loop load of ``RATE`` per
  second through Traefik from the delivery until a moment after the new content is served; goal 0).
- ``destroy_s``: from sending the ``closed`` delivery to nothing of the preview being left.
- ``left_after_destroy``: how many things of the preview are left (goal 0): its containers, volumes and
  built images on the engine (by their ``berth.*`` labels), its database's container and volume, Traefik
  routers naming its host, an answer other than 404 for its host, the api's records (preview, preview
  application, database). ``left`` names them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from benchmarks.support.platform import BerthUp, busybox_image
from tests.support.open_loop import OpenLoop

NAME = "preview"
GOALS = {"left_after_destroy": ("<=", 0.0), "failed_during_update": ("<=", 0.0)}
NUMBER = 7
RATE = 20.0  # requests per second to the preview's host while it switches to the second commit
SETTLED_S = 0.5  # the load goes on this long after the new content is first served


def git(repo: Path, *args: str) -> str:
    argv = ["git", "-c", "user.name=b", "-c", "user.email=b@b", *args]
    return subprocess.run(argv, cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def make_repo(root: Path, base: str) -> tuple[Path, str]:
    """A repository whose ``feature`` branch serves ``preview``; (its path, the feature head commit)."""
    repo = root / "site"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    dockerfile = f'FROM {base}\nCOPY index.html /www/index.html\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n'
    (repo / "Dockerfile").write_text(dockerfile)
    (repo / "index.html").write_text("production")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "production")
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "index.html").write_text("preview")
    git(repo, "commit", "-q", "-am", "preview")
    return repo, git(repo, "rev-parse", "HEAD")


def push(repo: Path, content: str) -> str:
    """A new commit on the ``feature`` branch whose site says ``content``; its id."""
    (repo / "index.html").write_text(content)
    git(repo, "commit", "-q", "-am", content)
    return git(repo, "rev-parse", "HEAD")


def pull_request(secret: str, action: str, sha: str) -> tuple[bytes, dict[str, str]]:
    """A GitHub ``pull_request`` delivery, signed as GitHub signs."""
    repo = {"full_name": "acme/site", "clone_url": "https://github.com/acme/site.git"}
    body = {
        "action": action,
        "number": NUMBER,
        "pull_request": {
            "number": NUMBER,
            "title": "A preview",
            "head": {"sha": sha, "ref": "feature", "repo": repo},
            "base": {"ref": "main", "repo": repo},
        },
    }
    raw = json.dumps(body).encode()
    signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": signature,
    }
    return raw, headers


def docker_ids(*args: str) -> list[str]:
    out = subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout
    return out.split()


def engine_left(app_id: str, database_id: str | None) -> dict[str, list[str]]:
    """What the engine still has of the preview application and of its database, by their labels."""
    left = {
        "containers": docker_ids("ps", "-aq", "--filter", f"label=berth.app={app_id}"),
        "volumes": docker_ids("volume", "ls", "-q", "--filter", f"label=berth.app={app_id}"),
        "images": docker_ids("images", "-q", "--filter", f"label=berth.application={app_id}"),
    }
    if database_id:
        left["database_containers"] = docker_ids("ps", "-aq", "--filter", f"label=berth.app={database_id}")
        left["database_volumes"] = docker_ids("volume", "ls", "-q", "--filter", f"label=berth.app={database_id}")
    return left


async def left_of(
    api: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    traefik: tuple[str, tuple[str, str]],
    app_id: str,
    preview: dict[str, Any],
) -> dict[str, Any]:
    """Everything of the preview still present anywhere (an empty list or False each when none is)."""
    left: dict[str, Any] = engine_left(preview["preview_application_id"], preview["database_id"])
    host = preview["host"]
    url, auth = traefik  # Traefik's API and proxy-sync's credentials
    async with httpx.AsyncClient(timeout=10, trust_env=False, auth=auth) as client:
        routers = (await client.get(f"{url}/api/http/routers")).json()
    left["traefik_routers"] = [r["name"] for r in routers if host in json.dumps(r)]
    left["host_answers"] = (await proxy.get("/", headers={"Host": host})).status_code != 404
    shown = (await api.get(f"/v1/applications/{app_id}/previews")).json()
    left["previews"] = [p["number"] for p in shown]
    gone = (await api.get(f"/v1/applications/{preview['preview_application_id']}")).status_code == 404
    left["preview_application"] = not gone
    db = preview["database_id"]
    left["database"] = bool(db) and (await api.get(f"/v1/databases/{db}")).status_code != 404
    return left


def count(left: dict[str, Any]) -> int:
    return sum(len(v) if isinstance(v, list) else int(bool(v)) for v in left.values())


async def _serves(proxy: httpx.AsyncClient, host: str, body: str) -> bool:
    """Whether the platform's proxy answers ``host`` with 200 and ``body``."""
    answer = await proxy.get("/", headers={"Host": host})
    return answer.status_code == 200 and answer.text.strip() == body


async def _until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.2)


async def _head_deployed(api: httpx.AsyncClient, app_id: str, sha: str) -> dict[str, Any]:
    """The preview's record once its deployment of ``sha`` is recorded."""

    async def recorded() -> dict[str, Any] | None:
        shown = (await api.get(f"/v1/applications/{app_id}/previews")).json()
        return next((p for p in shown if p["head_commit"] == sha and p["deployment_id"]), None)

    return dict(await _until(recorded, 30, f"the preview's deployment of {sha} recorded"))


async def _update(
    api: httpx.AsyncClient, proxy: httpx.AsyncClient, hook: tuple[str, str], host: str, sha: str
) -> dict[str, Any]:
    """Send the ``synchronize`` delivery of ``sha`` (its site says ``preview 2``) under an open-loop load on
    the preview's host until the new content has been served for ``SETTLED_S``; the time and the load."""
    port = proxy.base_url.port
    assert port is not None
    load = OpenLoop(port, host, RATE)
    runner = asyncio.create_task(load.run())
    try:
        t0 = time.monotonic()
        raw, headers = pull_request(hook[1], "synchronize", sha)
        r = await api.post(hook[0], content=raw, headers=headers)
        assert r.status_code == 202, r.text

        await _until(lambda: _serves(proxy, host, "preview 2"), 300, "the preview answering with the second commit")
        update_s = time.monotonic() - t0
        await asyncio.sleep(SETTLED_S)
    finally:
        load.stop.set()
        await runner
    return {
        "update_s": round(update_s, 3),
        "failed_during_update": len(load.errors),
        "errors_during_update": load.errors[:10],
        "requests_during_update": load.sent,
        "served_during_update": sorted(load.seen),
    }


async def cycle(
    api: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    traefik: tuple[str, tuple[str, str]],
    root: Path,
    track: list[str],
    live: Callable[[str, Path, str], Awaitable[None]] | None = None,
    forge: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Make a preview from a pull request, update it with a second commit and destroy it; the timings and
    what is left. ``track`` gets the ids whose containers are removed if the platform stops early; ``live``
    (the preview's host, the repository and the head commit) is awaited while the preview serves each head,
    before the next delivery; ``forge`` (a GitHub API address and token) is where the application's webhook
    reports commit statuses."""
    repo, sha = make_repo(root, busybox_image())
    r = await api.post("/v1/projects", json={"name": f"previews-{os.getpid()}-{uuid.uuid4().hex[:6]}"})
    r.raise_for_status()
    env_id = r.json()["environments"][0]["id"]
    body = {
        "name": "site",
        "source": {"kind": "git", "repository": str(repo), "branch": "main"},
        "services": [
            {
                "kind": "web",
                "name": "web",
                "port": 8080,
                "health_path": "/",
                "volumes": [{"name": "data", "path": "/data"}],
            }
        ],
        "stop_timeout_s": 2,
    }
    r = await api.post(f"/v1/environments/{env_id}/applications", json=body)
    assert r.status_code == 201, r.text
    app_id = r.json()["id"]
    track.append(app_id)
    r = await api.post(f"/v1/applications/{app_id}/webhook", json={})
    assert r.status_code == 201, r.text
    hook_url = httpx.URL(r.json()["url"])
    url, secret = hook_url.path, r.json()["secret"]
    if forge is not None:
        target = {"forge": "github", "api_url": forge[0], "repository": "acme/site", "token": forge[1]}
        r = await api.put(f"/v1/applications/{app_id}/webhook/status", json=target)
        assert r.status_code == 200, r.text
    settings = {"database": "fresh", "env": [{"name": "STAGE", "value": "preview"}]}
    r = await api.put(f"/v1/applications/{app_id}/previews/settings", json=settings)
    assert r.status_code == 200, r.text
    host = f"pr-{NUMBER}-site.localhost"

    t0 = time.monotonic()
    raw, headers = pull_request(secret, "opened", sha)
    r = await api.post(url, content=raw, headers=headers)
    assert r.status_code == 202, r.text

    await _until(lambda: _serves(proxy, host, "preview"), 300, "the preview answering through Traefik")
    create_s = time.monotonic() - t0
    (preview,) = (await api.get(f"/v1/applications/{app_id}/previews")).json()
    track += [preview["preview_application_id"], preview["database_id"]]
    running = docker_ids("ps", "-q", "--filter", f"label=berth.app={preview['preview_application_id']}")
    env = json.loads(
        subprocess.run(
            ["docker", "inspect", "--format", "{{json .Config.Env}}", running[0]],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    layered = "STAGE=preview" in env and any(e.startswith("DATABASE_URL=postgresql://") for e in env)
    deployed = {sha: preview["deployment_id"]}
    if live is not None:
        await live(preview["host"], repo, sha)

    second = push(repo, "preview 2")
    update = await _update(api, proxy, (url, secret), host, second)
    deployed[second] = (await _head_deployed(api, app_id, second))["deployment_id"]
    if live is not None:
        await live(preview["host"], repo, second)

    t1 = time.monotonic()
    raw, headers = pull_request(secret, "closed", second)
    r = await api.post(url, content=raw, headers=headers)
    assert r.status_code == 202, r.text

    async def nothing_left() -> bool:
        return count(await left_of(api, proxy, traefik, app_id, preview)) == 0

    try:
        await _until(nothing_left, 180, "the preview destroyed")
    except TimeoutError:
        pass  # counted below
    destroy_s = time.monotonic() - t1
    left = await left_of(api, proxy, traefik, app_id, preview)
    return {
        "create_s": round(create_s, 3),
        **update,
        "destroy_s": round(destroy_s, 3),
        "left_after_destroy": count(left),
        "left": left,
        "variables_layered": layered,
        "host": host,
        "database": "fresh (postgresql)",
        "deployments": deployed,
        "link_base": str(hook_url.copy_with(path="/", query=None)).rstrip("/"),
    }


async def run() -> dict[str, Any]:
    image_map = json.dumps({"postgres:15": "berth/postgres:15-bookworm"})
    extra = {"BERTH_ALLOW_LOCAL_GIT": "1", "BERTH_IMAGE_MAP": image_map}
    platform = await asyncio.to_thread(BerthUp(extra_env=extra).start)
    api = httpx.AsyncClient(
        base_url=platform.api_url, headers={"Authorization": f"Bearer {platform.token}"}, timeout=30, trust_env=False
    )
    proxy = httpx.AsyncClient(base_url=f"http://127.0.0.1:{platform.proxy_port}", timeout=10, trust_env=False)
    try:
        with tempfile.TemporaryDirectory(prefix="berth-bench-preview-") as root:
            traefik = (platform.traefik_api_url, platform.traefik_api_auth)
            result = await cycle(api, proxy, traefik, Path(root), platform.apps)
    finally:
        await api.aclose()
        await proxy.aclose()
        await asyncio.to_thread(platform.stop)
    return {**result, "path": "signed pull_request -> api -> builder -> scheduler -> proxy-sync -> Traefik"}
