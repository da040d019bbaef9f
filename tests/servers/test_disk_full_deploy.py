"""A deployment whose image is pulled from a registry onto a server whose disk is full fails at once, its
reason naming the full disk of that server (not the registry, not an engine out of reach); one whose image
is larger than the room left there (the engine cleans up after the failed transfer or pull, so the disk has
room again) names both sizes. The real scheduler and proxy-sync (``test_placement_e2e.placed``), two
namespace test servers, the first with a data root of 128 MB of its own, filled (or all but 12 MiB) once
both servers are set up; a ``docker-registry`` on the network."""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scheduler.platform import web_app
from tests.servers import test_placement_e2e as e2e
from tests.servers.test_disk_no_room import IMAGE, MIB, big_image, leave_free  # noqa: F401 (a fixture)
from tests.servers.test_placement_e2e import HOST
from tests.support import registry as reg
from tests.support.images import busybox_image
from tests.support.testservers import TestServer, make_net, start_server, tear_down

pytestmark = pytest.mark.slow
placed = e2e.placed  # the scheduler and proxy-sync, with both servers announced


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[TestServer], reg.Registry, reg.Registry]]:
    if reg.available():
        pytest.skip(reg.available() or "")
    busybox_image()
    net = make_net()
    made: list[TestServer] = []
    started: list[reg.Registry] = []
    try:
        root: Path = tmp_path_factory.mktemp("full-registry")
        reg.pushing_and_served(root, net.gateway, started)
        made.append(start_server(net, 2, insecure_registries=(started[1].host,), data_mb=128))
        made.append(start_server(net, 3))
        yield made, started[0], started[1]
    finally:
        tear_down(made, started, net)


@pytest.fixture(scope="module")
def servers(rig: tuple[list[TestServer], reg.Registry, reg.Registry]) -> list[TestServer]:
    return rig[0]


async def test_a_pull_onto_a_full_disk_fails_the_deployment_naming_the_full_disk(placed, rig):
    platform, ids = placed
    [full, _], pushing, network = rig
    pushed = await reg.push(busybox_image(), pushing, "berth/full-deploy", "1")
    image = pushed.replace(pushing.host, network.host)
    full.fill_disk()
    try:
        spec = web_app(image, "v1", HOST)
        spec["services"][0]["servers"] = [ids[0]]
        started = time.monotonic()
        dep = await platform.deploy(uuid.uuid4().hex, spec)
        done = await platform.wait(dep, timeout=120)
        took = time.monotonic() - started
    finally:
        full.free_disk()
    assert done["type"] == "evt.deployment.failed", (done, platform.steps(dep))
    reason = done["data"]["reason"]
    assert reason.startswith(f"the disk of server {ids[0]} is full (Docker's data root): image '{image}'"), reason
    assert "no space left on device" in reason and took < 30, (took, reason)


@pytest.mark.usefixtures("big_image")
async def test_an_image_larger_than_the_room_left_fails_the_deployment_naming_both_sizes(placed, rig, unique):
    platform, ids = placed
    [full, _], pushing, network = rig
    own = f"berth/no-room-{unique}:1"  # Berth's own image: streamed from the control plane's engine
    subprocess.run(["docker", "tag", IMAGE, own], check=True, capture_output=True)
    pushed = (await reg.push(IMAGE, pushing, "berth/no-room", "1")).replace(pushing.host, network.host)
    leave_free(full, 12 * MIB)
    reasons = []
    try:
        for image in (own, pushed):
            spec = web_app(image, "v1", HOST)
            spec["services"][0]["servers"] = [ids[0]]
            dep = await platform.deploy(uuid.uuid4().hex, spec)
            done = await platform.wait(dep, timeout=120)
            assert done["type"] == "evt.deployment.failed", (done, platform.steps(dep))
            reasons.append(done["data"]["reason"])
    finally:
        full.free_disk()
        subprocess.run(["docker", "rmi", own], check=False, capture_output=True)
    room = rf"the disk of server {ids[0]} has no room for image {{}} \(Docker's data root\): it needs {{}}, 1[01] MiB free: "
    assert re.search(room.format(re.escape(own), "24 MiB"), reasons[0]), reasons[0]
    assert re.search(room.format(re.escape(pushed), "at least 25 MiB"), reasons[1]), reasons[1]
