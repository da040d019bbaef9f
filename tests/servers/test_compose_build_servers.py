"""A compose service's own build on two servers end to end: the real builder (git daemon on loopback),
scheduler and proxy-sync, two namespace test servers (each its own dockerd, sshd and Traefik). The service's
image (``berth/<app>-<service>:<deployment>``) is built once on the control plane's engine, streamed over SSH
to both servers (as the application's own image is without a push registry) and served by both."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.builder.support import GitDaemon, make_repo, publish_bare, start_builder, stop_builder
from tests.scheduler.test_git_flow import dockerfile
from tests.servers import test_placement_e2e as e2e
from tests.servers.test_placement_e2e import HOST, _served
from tests.support.images import busybox_image
from tests.support.testservers import TestServer, running_servers

pytestmark = pytest.mark.slow
placed = e2e.placed  # the scheduler and proxy-sync, with both servers announced


@pytest.fixture(scope="module")
def servers() -> Iterator[list[TestServer]]:
    busybox_image()
    with running_servers(2) as two:
        yield two


def _spec(name: str, url: str, ids: list[str]) -> dict[str, Any]:
    web = {"kind": "web", "name": "web", "port": 8080, "health_path": "/", "hosts": [HOST], "servers": ids}
    return {
        "name": name,
        "source": {"kind": "git", "repository": url, "ref": "main"},
        "services": [{**web, "build": {"subdirectory": "front"}}],
        "private_network": True,
        "stop_timeout_s": 3,
    }


async def test_a_compose_services_build_is_streamed_to_both_servers_and_served_by_both(
    placed, servers, database, tmp_path, unique
):
    platform, ids = placed
    daemon = GitDaemon(tmp_path / "served").start()
    builder = await start_builder(platform.nats_url, database, tmp_path / "builder")
    name = f"cs{unique}"
    app_id = f"cs{unique}"
    try:
        repo = tmp_path / "repo"
        make_repo(repo, {"front/Dockerfile": dockerfile(busybox_image()), "front/index.html": "compose built\n"})
        publish_bare(repo, daemon.base, "app.git")
        dep = await platform.deploy(app_id, _spec(name, daemon.url("app.git"), ids))
        done = await platform.wait(dep, timeout=300)
        assert done["type"] == "evt.deployment.succeeded", (done, platform.steps(dep))
        image = f"berth/{name}-web:{dep.replace('-', '')[:8]}"
        assert done["data"]["image"] == ""  # no service runs the application's own image
        lines = [e["data"]["line"] for e in platform.logs if e["data"]["deployment_id"] == dep]
        for sid in ids:
            assert any(line.startswith(f"[starting] image {image} delivered to server {sid} in ") for line in lines)
        for server in servers:
            await _served(server.address, "compose built")
            running = server.docker("ps", "-q", "--filter", f"label=berth.app={app_id}").split()
            assert [server.docker("inspect", "--format", "{{.Config.Image}}", c).strip() for c in running] == [image]
    finally:
        await stop_builder(builder)
        daemon.stop()
        built = subprocess.run(
            ["docker", "images", "-q", f"berth/{name}-web"], capture_output=True, text=True
        ).stdout.split()
        for image_id in set(built):
            subprocess.run(["docker", "rmi", "-f", image_id], capture_output=True, check=False)
