"""A registry pull onto a server whose disk is full fails quickly with a reason that names the full disk (not
a registry's error, not an engine out of reach), and succeeds once there is room. The server is a namespace
test server whose engine's data root is a 128 MB file system of its own, filled; the registry is Debian's
``docker-registry`` on the test network's gateway. (The whole deployment: ``test_disk_full_deploy.py``.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from berth_common.docker import DockerEngines, local_engine
from berth_common.docker.engine import Engine, endpoint
from berth_common.registries import parse
from berth_scheduler.adapters.docker import DockerExecutor, explained
from berth_scheduler.adapters.registry import ImageRegistry, PullError
from berth_scheduler.domain import images
from tests.support import registry as reg
from tests.support.images import busybox_image
from tests.support.testservers import TestServer, make_net, remove_net, start_server, stop_server

pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestServer, reg.Registry, reg.Registry]]:
    """(a server with a 128 MB data root, the registry tests push to, the same storage served on the network)."""
    if reg.available():
        pytest.skip(reg.available() or "")
    net = make_net()
    started: list[reg.Registry] = []
    server = None
    try:
        started.append(reg.Registry(tmp_path / "pushing").start())
        storage = tmp_path / "pushing" / "storage"
        started.append(reg.Registry(tmp_path / "served", bind=net.gateway, storage=storage).start())
        server = start_server(net, 2, with_sshd=False, insecure_registries=(started[1].host,), data_mb=128)
        yield server, started[0], started[1]
    finally:
        if server is not None:
            stop_server(server)
        for registry in started:
            registry.stop()
        remove_net(net)


async def registry_on(server: TestServer) -> ImageRegistry:
    engines = DockerEngines(local_engine(None))
    await engines.add(Engine(endpoint(server.docker_host), "v1.41", "6292e648"))
    return ImageRegistry(DockerExecutor(engines, "6292e648"))


async def test_a_pull_onto_a_full_disk_names_the_full_disk(served: tuple[TestServer, reg.Registry, reg.Registry]):
    server, pushing, network = served
    pushed = await reg.push(busybox_image(), pushing, "berth/disk-full", "1")
    ref = parse(pushed.replace(pushing.host, network.host))
    registry = await registry_on(server)
    server.fill_disk()
    seen: list[dict[str, Any]] = []

    async def on_message(message: dict[str, Any]) -> None:
        seen.append(message)

    started = time.monotonic()
    with pytest.raises(PullError) as caught:
        await registry.pull(images.pull_call(ref), on_message, 120)
    assert time.monotonic() - started < 15, "a full disk is named at once, not after retries or a timeout"
    assert "no space left on device" in str(caught.value)
    assert images.failure_kind(str(caught.value)) == "disk_full"
    # the deployment's reason, as image_pull.pull_on words it for that server
    reason = explained(images.failure_reason(ref, str(caught.value), with_credentials=False, present=False), "6292e648")
    assert reason.startswith(
        f"the disk of server 6292e648 is full (Docker's data root): image '{ref}' is not on this server and could "
        "not be pulled: the server's disk has no room for it: free space there"
    ), reason

    # room again: the same pull succeeds
    server.free_disk()
    await registry.pull(images.pull_call(ref), on_message, 120)
    assert await registry.local(str(ref)) is not None
