"""A scale of a compose service whose image is its own, onto a server that lacks that image, end to end: the
real scheduler and proxy-sync, two namespace test servers (each its own dockerd, sshd and Traefik). The
service runs Berth's own image (``berth/<app>-web:v1``, made on the control plane's engine); after the
deployment the image is taken off the server (as on a server that never held it), and scaling the service
1 -> 2 there streams the image to the server again before the new replica starts, as a deployment does."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.scheduler import apps
from tests.scheduler.test_scale import scale, wait_scaled
from tests.servers import test_compose_build_servers as built
from tests.servers import test_placement_e2e as e2e
from tests.servers.test_placement_e2e import HOST, _served
from tests.support.images import busybox_image

pytestmark = pytest.mark.slow
placed = e2e.placed  # the scheduler and proxy-sync, with both servers announced
servers = built.servers  # two namespace servers (module-scoped here too)


def _spec(name: str, image: str, server_id: str) -> dict[str, Any]:
    web = {
        "kind": "web",
        "name": "web",
        "port": 8080,
        "health_path": "/cgi-bin/health",
        "hosts": [HOST],
        "servers": [server_id],
        "image": {"image": image},
        "command": apps.web("own image"),
    }
    return {
        "name": name,
        "source": {"kind": "image", "image": busybox_image()},
        "services": [web],
        "private_network": True,
        "stop_timeout_s": 3,
    }


async def test_a_scale_delivers_the_services_own_image_to_a_server_that_lacks_it(placed, servers, unique):
    platform, ids = placed
    name = f"sc{unique}"
    app_id = f"sc{unique}"
    image = f"berth/{name}-web:v1"
    subprocess.run(["docker", "tag", busybox_image(), image], check=True, capture_output=True)
    server = servers[0]
    try:
        dep = await platform.deploy(app_id, _spec(name, image, ids[0]))
        done = await platform.wait(dep, timeout=300)
        assert done["type"] == "evt.deployment.succeeded", (done, platform.steps(dep))
        await _served(server.address, "own image")
        server.docker("rmi", "-f", image)  # the running replica keeps its image; the server has no tag now
        assert server.docker("images", "-q", image).strip() == ""

        rid = await scale(platform, app_id, {"web": 2})
        result = await wait_scaled(platform, app_id, rid, timeout=180)
        assert (result["outcome"], result["to_replicas"]) == ("scaled", 2), result
        assert server.docker("images", "-q", image).strip() != ""
        running = server.docker("ps", "-q", "--filter", f"label=berth.app={app_id}").split()
        assert len(running) == 2
        assert {server.docker("inspect", "--format", "{{.Config.Image}}", c).strip() for c in running} == {image}
        lines = [e["data"]["line"] for e in platform.logs if e["data"]["deployment_id"] == dep]
        assert any(line.startswith(f"[scale] service web: image {image} is Berth's own") for line in lines), lines
    finally:
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True, check=False)
