"""From a git repository to a live URL: the real builder (git daemon on loopback, Docker build), the
scheduler, proxy-sync and Traefik, in-process on one bus; then a redeploy of a new commit under load."""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

from tests.builder.support import (
    GitDaemon,
    commit,
    git,
    make_repo,
    publish_bare,
    remove_built_images,
    start_builder,
    stop_builder,
)
from tests.scheduler.platform import Load, containers_of, wait_served

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def dockerfile(base: str) -> str:
    return "\n".join(
        [
            f"FROM {base}",
            "COPY index.html /www/index.html",
            'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]',
        ]
    )


def app(name: str, repository: str, host: str) -> dict:
    return {
        "name": name,
        "source": {"kind": "git", "repository": repository, "ref": "main"},
        "services": [{"kind": "web", "name": "web", "port": 8080, "health_path": "/", "hosts": [host]}],
        "stop_timeout_s": 3,
    }


async def test_git_repository_to_live_url_and_redeploy(platform, database, busybox, app_id, unique, tmp_path):
    daemon = GitDaemon(tmp_path / "served").start()
    builder = await start_builder(platform.nats_url, database, tmp_path / "builder")
    name = f"g{unique}"
    host = f"web-{name}.localhost"
    try:
        repo = tmp_path / "repo"
        make_repo(repo, {"Dockerfile": dockerfile(busybox), "index.html": "built v1\n"})
        bare = publish_bare(repo, daemon.base, "app.git")
        d1 = await platform.deploy(app_id, app(name, daemon.url("app.git"), host))
        done = await platform.wait(d1, timeout=180)
        assert done["type"] == "evt.deployment.succeeded", done
        v1_image = done["data"]["image"]
        assert done["data"]["image"].startswith(f"berth/{name}:")
        steps = [s for _, s in platform.steps(d1)]
        assert steps[:3] == ["queued", "build requested", "build succeeded"]
        await wait_served(platform, host, "built v1")
        # the builder's lines and the scheduler's share the deployment's log subject
        streams = {line["data"]["stream"] for line in platform.logs if line["data"]["deployment_id"] == d1}
        assert streams == {"build", "deploy"}

        commit(repo, {"index.html": "built v2\n"})
        git("push", "-q", str(bare), "main", cwd=repo)
        load = Load(platform.traefik.web_port, host).start()
        d2 = await platform.deploy(app_id, app(name, daemon.url("app.git"), host))
        done = await platform.wait(d2, timeout=180)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(load.stop)
        assert done["type"] == "evt.deployment.succeeded", done
        gets = [r for r in load.results if r[0] == "get"]
        assert [r for r in gets if r[1] != 200] == [], gets[:5]
        assert [r[2] for r in gets][-1] == "built v2"
        assert {dep for _, dep in containers_of(app_id)} == {d2}

        # a broken build fails the deployment with the builder's reason; v2 keeps serving
        commit(repo, {"Dockerfile": dockerfile(busybox) + "\nRUN exit 42\n"})
        git("push", "-q", str(bare), "main", cwd=repo)
        d3 = await platform.deploy(app_id, app(name, daemon.url("app.git"), host))
        failed = await platform.wait(d3, timeout=180)
        assert failed["type"] == "evt.deployment.failed", failed
        assert failed["data"]["failed_in"] == "building" and "build failed" in failed["data"]["reason"]
        await wait_served(platform, host, "built v2")

        # rollback: the api names the earlier deployment's image; no build, and the time is reported
        rollback = {**app(name, daemon.url("app.git"), host), "source": {"kind": "image", "image": v1_image}}
        load = Load(platform.traefik.web_port, host).start()
        d4 = await platform.deploy(app_id, rollback)
        done = await platform.wait(d4, timeout=60)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(load.stop)
        assert done["type"] == "evt.deployment.succeeded", done
        assert done["data"]["image"] == v1_image and done["data"]["previous_deployment_id"] == d2
        assert 0 < done["data"]["duration_s"] < 30
        assert "build requested" not in [s for _, s in platform.steps(d4)]
        gets = [r for r in load.results if r[0] == "get"]
        assert [r for r in gets if r[1] != 200] == [] and gets[-1][2] == "built v1"
        print(f"\nMEASURED rollback (no build) {done['data']['duration_s']}s")
    finally:
        await stop_builder(builder)
        daemon.stop()
        remove_built_images(name)


async def test_cancelling_a_deployment_stops_its_build(platform, database, busybox, app_id, unique, tmp_path):
    from tests.builder.test_cancel import processes_with, wait_for

    marker = f"mk{unique}dep"
    builder = await start_builder(platform.nats_url, database, tmp_path / "builder", allow_local_git=True)
    name = f"c{unique}"
    try:
        repo = tmp_path / "repo"
        make_repo(repo, {"Dockerfile": f"FROM {busybox}\nRUN sleep 300 && echo {marker}\n"})
        dep = await platform.deploy(app_id, app(name, str(repo), f"web-{name}.localhost"))
        await platform.wait(dep, ("evt.deployment.progressed",), step="build requested")
        await wait_for(lambda: processes_with(marker), 120, "the slow RUN step")
        t0 = time.monotonic()
        await platform.cancel(dep)
        cancelled = await platform.wait(dep, timeout=10)
        ended = time.monotonic() - t0
        assert cancelled["type"] == "evt.deployment.cancelled", cancelled
        assert cancelled["data"]["cancelled_in"] == "building"
        stopped = await wait_for(lambda: not processes_with(marker), 10, "the build's end")
        await wait_for(
            lambda: any(
                e["type"] == "evt.build.cancelled" and e["data"]["deployment_id"] == dep for e in builder.events
            ),
            10,
            "the builder's answer",
        )
        assert ended < 5.0 and ended + stopped < 5.0, (ended, stopped)
        assert not [e for e in builder.events if e["type"] == "evt.build.succeeded"]
        images = subprocess.run(
            ["docker", "images", "-q", f"berth/{name}"], capture_output=True, text=True, check=True
        ).stdout.split()
        assert images == [] and containers_of(app_id) == []
        assert any(line == "build cancelled: cancelled by user" for line in builder.lines(dep))
        print(f"\nMEASURED cancel while building: deployment cancelled {ended:.2f}s, build gone {ended + stopped:.2f}s")
    finally:
        await stop_builder(builder)
