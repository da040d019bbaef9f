"""A deployment whose image is pulled from a registry onto a server whose disk is full fails at once, its
reason naming the full disk of that server (not the registry, not an engine out of reach): the real
scheduler and proxy-sync (``test_placement_e2e.placed``), two namespace test servers, the first with a data
root of 128 MB of its own, filled once both servers are set up; a ``docker-registry`` on the network."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scheduler.platform import web_app
from tests.servers import test_placement_e2e as e2e
from tests.servers.test_placement_e2e import HOST
from tests.support import registry as reg
from tests.support.images import busybox_image
from tests.support.testservers import TestServer, make_net, remove_net, start_server, stop_server

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
        started.append(reg.Registry(root / "pushing").start())
        started.append(reg.Registry(root / "served", bind=net.gateway, storage=root / "pushing" / "storage").start())
        made.append(start_server(net, 2, insecure_registries=(started[1].host,), data_mb=128))
        made.append(start_server(net, 3))
        yield made, started[0], started[1]
    finally:
        for server in made:
            stop_server(server)
        for registry in started:
            registry.stop()
        remove_net(net)


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
