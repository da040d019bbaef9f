"""A build whose context cannot fit in the free space of its server's data root fails before it starts, naming
both sizes ("its context alone needs at least 24 MiB, 12 MiB free"), where it would otherwise fail on the
engine's words only ("no space left on device" while it stores the context). The build server is a namespace
test server whose engine's data root is a 128 MB file system of its own, filled to all but 12 MiB: once as
the builder's own engine (measured through the engine, as the control plane's), once as a remote build
server (measured with ``df`` over SSH). With room again the same build succeeds."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.builder.support import build_command, make_repo
from tests.builder.test_build_server import announce, on_server
from tests.servers.test_disk_no_room import MIB, leave_free
from tests.support.testservers import TestServer, make_net, remove_net, start_server, stop_server

pytestmark = [pytest.mark.slow, pytest.mark.docker]
NO_ROOM = re.compile(
    r"^the disk of the build server has no room for this build \(Docker's data root\): its context alone needs "
    r"at least 24 MiB, 1[0-2] MiB free: free space there \(docker system prune, a larger disk\) or leave files "
    r"out of the context \(\.dockerignore\), and deploy again\."
)


@pytest.fixture(scope="module")
def server() -> Iterator[TestServer]:
    net = make_net()
    made = start_server(net, 2, data_mb=128)
    try:
        yield made
    finally:
        stop_server(made)
        remove_net(net)


def big_repo(path: Path, busybox: str) -> Path:
    """A repository whose context takes just under 24 MiB (a blob of random text and a Dockerfile)."""
    blob = secrets.token_hex(12 * MIB - 512)  # 24 MiB less 1 KiB of text
    make_repo(path, {"Dockerfile": f"FROM {busybox}\nCOPY blob /blob\n", "blob": blob})
    return path


async def test_a_build_larger_than_the_room_on_its_own_engine_fails_at_once_naming_both_sizes(
    builder_factory: Any, server: TestServer, busybox: str, tmp_path: Path, unique: str
) -> None:
    server.load_image(busybox)  # the base, and the helper that measures the data root
    repo = big_repo(tmp_path / "repo", busybox)
    b = await builder_factory(allow_local_git=True, docker_host=server.docker_host)
    tag = f"berth-test/room-{unique}:1"
    leave_free(server, 12 * MIB)
    try:
        cmd = build_command(build_id=f"room-{unique}", repository=str(repo), image_tag=tag)
        await b.api.publish(cmd)
        evt = await b.result(cmd.build_id, timeout=120)
    finally:
        server.free_disk()
    assert evt["type"] == "evt.build.failed" and evt["data"]["stage"] == "build", evt
    assert NO_ROOM.match(evt["data"]["reason"]), evt["data"]["reason"]
    lines = b.lines(cmd.deployment_id)
    assert not any(line.startswith("building ") for line in lines), lines  # refused before the engine had it
    assert server.docker("ps", "-aq", "--filter", "label=berth.data-root-helper").strip() == ""

    again = build_command(build_id=f"room2-{unique}", repository=str(repo), image_tag=tag)
    await b.api.publish(again)
    done = await b.result(again.build_id, timeout=180)
    assert done["type"] == "evt.build.succeeded", done
    server.docker("rmi", tag)


async def test_a_build_larger_than_the_room_on_a_remote_build_server_fails_naming_both_sizes(
    builder_factory: Any, server: TestServer, busybox: str, tmp_path: Path, unique: str
) -> None:
    server.load_image(busybox)
    repo = big_repo(tmp_path / "repo", busybox)
    b = await builder_factory(allow_local_git=True)
    server_id = f"srv-{unique}"
    await announce(b, server, server_id)
    leave_free(server, 12 * MIB)
    try:
        cmd = on_server(
            build_command(build_id=f"rroom-{unique}", repository=str(repo), image_tag=f"berth-test/r-{unique}:1"),
            server_id,
        )
        await b.api.publish(cmd)
        evt = await b.result(cmd.build_id, timeout=120)
    finally:
        server.free_disk()
    assert evt["type"] == "evt.build.failed" and evt["data"]["stage"] == "build", evt
    assert NO_ROOM.match(evt["data"]["reason"]), evt["data"]["reason"]
