"""A scale of a compose application onto a server that lacks what its new replicas run, end to end: the real
scheduler and proxy-sync, two namespace test servers (each its own dockerd, sshd and Traefik), and a registry
on the test network's gateway. A service running Berth's own image (``berth/<app>-web:v1``, made on the
control plane's engine) taken off the server has it streamed there again before the new replica starts,
as a deployment does; the application's prebuilt image and a service's own pulled image taken off the
server, after their tags moved on in the registry, are pulled again by the digests the live deployment
ran, so the new replicas run the same images as their siblings."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.scheduler import apps
from tests.scheduler.test_scale import scale, scaled, wait_scaled
from tests.servers import test_placement_e2e as e2e
from tests.servers.test_placement_e2e import HOST, _served
from tests.support import registry as reg
from tests.support.images import busybox_image
from tests.support.testservers import TestServer, make_net, start_server, tear_down

pytestmark = pytest.mark.slow
placed = e2e.placed  # the scheduler and proxy-sync, with both servers announced
Registries = tuple[reg.Registry, reg.Registry]  # pushed to from here; the same storage served on the test network


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[TestServer], Registries | None]]:
    """Two servers on a test network; a registry on its gateway when docker-registry is installed."""
    busybox_image()
    net = make_net()
    made: list[TestServer] = []
    started: list[reg.Registry] = []
    try:
        if reg.available() is None:
            root = tmp_path_factory.mktemp("scale-registry")
            reg.pushing_and_served(root, net.gateway, started)
        insecure = (started[1].host,) if started else ()
        for host in (2, 3):
            made.append(start_server(net, host, insecure_registries=insecure))
        yield made, (started[0], started[1]) if started else None
    finally:
        tear_down(made, started, net)


@pytest.fixture(scope="module")
def servers(rig: tuple[list[TestServer], Registries | None]) -> list[TestServer]:
    return rig[0]


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


def _image_ids(server: TestServer, app_id: str) -> dict[str, set[str]]:
    """Service -> the ids of the images its running containers on ``server`` were made from."""
    out: dict[str, set[str]] = {}
    for c in server.docker("ps", "-q", "--filter", f"label=berth.app={app_id}").split():
        line = server.docker("inspect", "--format", '{{index .Config.Labels "berth.service"}} {{.Image}}', c)
        service, image = line.split()
        out.setdefault(service, set()).add(image)
    return out


async def test_a_scale_pulls_the_images_the_live_deployment_ran_onto_a_server_that_lacks_them(placed, rig, unique):
    """The application's image (a service runs it) and a service's own image are pulled by the digests the
    live deployment recorded, not by their tags (which now name other images), and tagged as before."""
    servers, registries = rig
    if registries is None:
        pytest.skip(reg.available() or "no registry")
    pushing, served = registries
    platform, ids = placed
    server = servers[1]
    app_id = f"sp{unique}"
    refs = {repo: f"{served.host}/{app_id}/{repo}:1" for repo in ("app", "side")}
    for repo in refs:
        await reg.push(busybox_image(), pushing, f"{app_id}/{repo}", "1")
    web = {
        "kind": "web",
        "name": "web",
        "port": 8080,
        "health_path": "/cgi-bin/health",
        "hosts": [HOST],
        "servers": [ids[1]],
        "command": apps.web("pulled"),
    }
    side = {"kind": "worker", "name": "side", "servers": [ids[1]], "image": {"image": refs["side"]}}
    spec = {
        "name": app_id,
        "source": {"kind": "image", "image": refs["app"]},
        "services": [web, {**side, "command": apps.worker()}],
        "private_network": True,
        "stop_timeout_s": 2,
    }
    dep = await platform.deploy(app_id, spec)
    done = await platform.wait(dep, timeout=300)
    assert done["type"] == "evt.deployment.succeeded", (done, platform.steps(dep))
    await _served(server.address, "pulled")
    ran = _image_ids(server, app_id)
    assert set(ran) == {"web", "side"} and all(len(v) == 1 for v in ran.values()), ran

    for repo in refs:  # the tags move on to other images, and the server loses both names
        await reg.push(busybox_image(), pushing, f"{app_id}/{repo}", "1", mark="-v2")
    server.docker("rmi", "-f", *refs.values())
    assert (
        server.docker("images", "-q", refs["app"]).strip() == server.docker("images", "-q", refs["side"]).strip() == ""
    )

    rid = await scale(platform, app_id, {"web": 2, "side": 2})
    await wait_scaled(platform, app_id, rid, timeout=180)
    deadline = time.monotonic() + 30
    while len(outcomes := [e for e in scaled(platform, app_id) if e["request_id"] == rid]) < 2:
        assert time.monotonic() < deadline, outcomes
        await asyncio.sleep(0.1)
    assert sorted((e["service"], e["outcome"], e["to_replicas"]) for e in outcomes) == [
        ("side", "scaled", 2),
        ("web", "scaled", 2),
    ], outcomes
    now = _image_ids(server, app_id)
    assert now == ran, (now, ran)  # both replicas of each service: the image the deployment ran
    for ref in refs.values():  # named as before, by the image the deployment ran
        assert server.docker("image", "inspect", "--format", "{{.Id}}", ref).strip() in now["web"] | now["side"]
    lines = [e["data"]["line"] for e in platform.logs if e["data"]["deployment_id"] == dep]
    for label in ("the application's image", "service side"):
        assert any(line.startswith(f"[scale] {label}: ") and "tagged" in line for line in lines), (label, lines)
