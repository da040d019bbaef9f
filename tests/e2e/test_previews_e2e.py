"""A pull request's preview across the real processes of `berth up` (api, builder, scheduler, proxy-sync,
Traefik, Docker): a signed GitHub ``pull_request`` delivery builds the head branch of a local repository
into a preview with its own host, a named volume and a fresh PostgreSQL database; the ``closed`` delivery
destroys it, and then everything of it is listed (containers, volumes and images on the engine by label,
the database's container and volume, Traefik routers, the host's answer, the api's records) and found
gone. The scenario is ``benchmarks/bench_preview.py``'s."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.bench_preview import cycle, git
from berth_proxy_sync.domain.routes import API_USER, api_password
from tests.e2e.conftest import make_platform
from tests.e2e.test_compose_build_deploy import clients

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def platform(tmp_root: Path):
    gen = make_platform(tmp_root / "platform-previews")
    p = next(gen)
    p.env["BERTH_ALLOW_LOCAL_GIT"] = "1"
    p.env["BERTH_IMAGE_MAP"] = json.dumps({"postgres:15": "berth/postgres:15-bookworm"})
    p.up()
    yield p
    gen.close()


async def test_a_preview_is_made_from_a_pull_request_and_leaves_nothing(platform, tmp_path: Path):
    """While the pull request is open its host answers, through the platform's proxy port (Traefik), with
    the pull request head's ``index.html`` (not the base branch's); once it is closed the host answers 404."""
    api, proxy = clients(platform)
    ports = platform.ports
    seen: dict[str, tuple[str, int, str, str, str]] = {}

    async def live(host: str, repo: Path, sha: str) -> None:
        answer = await proxy.get("/", headers={"Host": host})
        head, base = git(repo, "show", f"{sha}:index.html"), git(repo, "show", "main:index.html")
        seen["open"] = (host, answer.status_code, answer.text.strip(), head, base)

    try:
        made: list[str] = []
        auth = (API_USER, api_password(platform.paths.secret_key.read_text().strip()))  # proxy-sync's
        traefik = (f"http://127.0.0.1:{ports['traefik_api']}", auth)
        result = await cycle(api, proxy, traefik, tmp_path, made, live)
        closed = await proxy.get("/", headers={"Host": result["host"]})
    finally:
        await api.aclose()
        await proxy.aclose()
    host, status, body, head, base = seen["open"]
    assert (host, status, body) == ("pr-7-site.localhost", 200, head)
    assert (head, base) == ("preview", "production")  # the head's content differs from the base branch's
    assert closed.status_code == 404
    assert result["variables_layered"]  # the preview-only value and the fresh database's URL reached it
    assert result["left_after_destroy"] == 0, result["left"]
    assert len(made) == 3  # the application, its preview and the preview's database were all made
