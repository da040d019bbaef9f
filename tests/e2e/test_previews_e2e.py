"""A pull request's preview across the real processes of `berth up` (api, builder, scheduler, proxy-sync,
Traefik, Docker): a signed GitHub ``pull_request`` delivery builds the head branch of a local repository
into a preview with its own host, a named volume and a fresh PostgreSQL database; a ``synchronize`` delivery
of a second commit redeploys it under load with no failed request; each head's commit statuses reach a
local stand-in of GitHub's status API; the ``closed`` delivery destroys it, and then everything of it is
listed (containers, volumes and images on the engine by label, the database's container and volume, Traefik
routers, the host's answer, the api's records) and found gone. The scenario is
``benchmarks/bench_preview.py``'s."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from benchmarks.bench_preview import RATE, SETTLED_S, cycle, git
from berth_proxy_sync.domain.routes import API_USER, api_password
from tests.api.preview_bodies import CommentReceiver
from tests.e2e.conftest import make_platform
from tests.e2e.test_compose_build_deploy import clients

pytestmark = pytest.mark.slow
MADE: list[str] = []  # what the test made on the module's platform (its application, preview, database)
REPORTED_S = 15.0  # from a head served to its success status at the forge


@pytest.fixture(scope="module")
def platform(tmp_root: Path):
    gen = make_platform(tmp_root / "platform-previews")
    p = next(gen)
    p.env["BERTH_ALLOW_LOCAL_GIT"] = "1"
    p.env["BERTH_IMAGE_MAP"] = json.dumps({"postgres:15": "berth/postgres:15-bookworm"})
    p.env["BERTH_OUTBOUND_ALLOW"] = "127.0.0.1/32"  # the stand-in forge's status API listens on loopback
    p.up()
    yield p
    gen.close()


async def test_a_preview_is_made_updated_and_destroyed_from_a_pull_request(platform, tmp_path: Path):
    """While the pull request is open its host answers, through the platform's proxy port (Traefik), with
    the head commit's ``index.html`` (not the base branch's); a second commit pushed to it is served next,
    with every request to the host answered 200 while it switches; the forge is told ``pending`` then
    ``success`` with the deployment's link for each head; once it is closed the host answers 404."""
    api, proxy = clients(platform)
    forge = await CommentReceiver("github", "f0rge-t0ken", repository="acme/site").start()
    seen: dict[str, tuple[str, int, str, str, str]] = {}

    async def live(host: str, repo: Path, sha: str) -> None:
        # the head's final status reaches the forge soon after it first serves (the old version drains 2 s, not
        # 30 s); until then the old version may still answer too, after it only the head does
        deadline = time.monotonic() + REPORTED_S
        while not any(sha in r.path and r.json.get("state") == "success" for r in forge.accepted):
            if time.monotonic() > deadline:
                links = {d["target_url"] for d in forge.statuses}
                states = [(await api.get(httpx.URL(u).path)).json()["detail"] for u in links]
                raise AssertionError(f"no success status for {sha} within {REPORTED_S} s: {forge.statuses} {states}")
            await asyncio.sleep(0.2)
        answer = await proxy.get("/", headers={"Host": host})
        head, base = git(repo, "show", f"{sha}:index.html"), git(repo, "show", "main:index.html")
        seen[sha] = (host, answer.status_code, answer.text.strip(), head, base)

    try:
        if MADE:  # an earlier attempt's, on this module's platform: its hosts are taken
            await destroy_previews(api, MADE[:1])
            await api.delete(f"/v1/applications/{MADE[0]}")
            await gone(api, MADE[:1])
            MADE.clear()
        made = MADE
        auth = (API_USER, api_password(platform.paths.secret_key.read_text().strip()))  # proxy-sync's
        traefik = (f"http://127.0.0.1:{platform.ports['traefik_api']}", auth)
        result = await cycle(api, proxy, traefik, tmp_path, made, live, (f"{forge.base}/api", "f0rge-t0ken"))
        closed = await proxy.get("/", headers={"Host": result["host"]})
    finally:
        await api.aclose()
        await proxy.aclose()
        await forge.stop()
    first, second = result["deployments"]  # the head commits, in order, with their preview deployment
    assert seen[first] == ("pr-7-site.localhost", 200, "preview", "preview", "production")
    assert seen[second] == ("pr-7-site.localhost", 200, "preview 2", "preview 2", "production")
    assert closed.status_code == 404
    assert result["variables_layered"]  # the preview-only value and the fresh database's URL reached it

    # the second commit redeployed the same preview under an open-loop load: no request failed
    assert result["deployments"][first] != result["deployments"][second]
    assert result["failed_during_update"] == 0, result["errors_during_update"]
    assert result["served_during_update"] == ["preview", "preview 2"]
    # the load ran at half its rate or more (a loaded machine slows its sender)
    assert result["requests_during_update"] >= RATE * (result["update_s"] + SETTLED_S) * 0.5

    # the forge saw each head's status named berth/preview: pending, then success, with its deployment's link
    def link(sha: str) -> str:
        return f"{result['link_base']}/v1/deployments/{result['deployments'][sha]}"

    statuses = [r for r in forge.requests if "/statuses/" in r.path]
    got = [(r.path, r.json["state"], r.json["target_url"], r.json["context"]) for r in statuses]
    want = [
        (f"/api/repos/acme/site/statuses/{sha}", state, link(sha), "berth/preview")
        for sha in (first, second)
        for state in ("pending", "success")
    ]
    assert got == want and forge.problems == []
    (comment,) = forge.comments.values()  # one comment on the pull request, updated in place
    assert "Status: destroyed" in comment and second[:12] in comment

    assert result["left_after_destroy"] == 0, result["left"]
    assert len(made) == 3  # the application, its preview and the preview's database were all made


async def destroy_previews(api: httpx.AsyncClient, applications: list[str]) -> None:
    """Destroy the previews of the applications and wait (up to a minute) until none is listed."""
    for app_id in applications:
        path = f"/v1/applications/{app_id}/previews"
        for preview in (await api.get(path)).json():
            await api.delete(f"{path}/{preview['id']}")
        deadline = time.monotonic() + 60
        while (await api.get(path)).json() and time.monotonic() < deadline:
            await asyncio.sleep(0.5)


async def gone(api: httpx.AsyncClient, applications: list[str]) -> None:
    """Wait (up to two minutes) until none of the applications is found."""
    deadline = time.monotonic() + 120
    for app_id in applications:
        while (await api.get(f"/v1/applications/{app_id}")).status_code != 404 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
