"""An image larger than the room on a server's disk: the engine fails the load and removes what it had
written, so afterwards the disk has room and asking the engine (``disk_full.probe``) finds nothing. Berth
compares the image's size (on the engine it came from) with the free space of the server's data root
(``df`` over SSH, as server validation measures it; the control plane's own through its engine, a helper
container that mounts the data root) and names both. The server is a namespace test server with a 128 MB
data root of its own, filled to all but 12 MiB; the image takes 24 MiB."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from berth_common import image_delivery as d
from berth_common import ssh
from berth_common.catalogue.specs import LOCAL_SERVER
from berth_common.docker import DockerEngines, data_root, disk_full, local_engine
from berth_common.docker.api import EngineApi
from berth_common.docker.data_root import free_bytes, image_bytes
from berth_scheduler.adapters.docker import DockerExecutor
from berth_scheduler.adapters.fleet import Fleet
from berth_scheduler.usecases.rollout import room
from berth_scheduler.usecases.rollout.context import RolloutContext
from tests.support.images import busybox_image
from tests.support.testservers import FILLER, TestServer, make_net, remove_net, start_server, stop_server

pytestmark = pytest.mark.slow
MIB = 1024 * 1024
IMAGE = "berth-test/no-room:1"


@pytest.fixture
def server() -> Iterator[TestServer]:
    net = make_net()
    made = start_server(net, 2, data_mb=128)
    try:
        yield made
    finally:
        stop_server(made)
        remove_net(net)


@pytest.fixture
def big_image(tmp_path: Path) -> Iterator[str]:
    """A local image of one 24 MiB layer of random bytes (no compression or sharing makes it smaller)."""
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY blob /blob\n")
    (tmp_path / "blob").write_bytes(os.urandom(24 * MIB))
    subprocess.run(["docker", "build", "-q", "-t", IMAGE, str(tmp_path)], check=True, capture_output=True)
    try:
        yield IMAGE
    finally:
        subprocess.run(["docker", "rmi", "-f", IMAGE], check=False, capture_output=True)


def leave_free(server: TestServer, free_bytes: int) -> None:
    data = server.root / "data"
    fd = os.open(data / f"{FILLER}-0", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, shutil.disk_usage(data).free - free_bytes)
    finally:
        os.close(fd)


async def test_an_image_larger_than_the_free_space_is_named_with_both_sizes(
    server: TestServer, big_image: str, tmp_path: Path
):
    leave_free(server, 12 * MIB)
    with pytest.raises(d.DeliveryError) as caught:
        await d.deliver_image("/var/run/docker.sock", str(server.docker_sock), big_image, timeout=120)
    free_now = shutil.disk_usage(server.root / "data").free
    assert free_now > 10 * MIB  # the engine removed what it wrote: room again

    pool = ssh.SshPool(tmp_path / "s")
    target = server.ssh_target()

    async def run(argv: Sequence[str]) -> tuple[int, str, str]:
        return await pool.run("6292e648", target, argv, 10)

    try:
        async with (
            EngineApi.on_unix("/var/run/docker.sock", "v1.41") as local,
            EngineApi.on_unix(str(server.docker_sock), "v1.41") as remote,
        ):
            assert await disk_full.probe(remote) is None  # the engine has room: it cannot say why
            needed, free = await image_bytes(local, big_image), await free_bytes(remote, run)
    finally:
        await pool.close()
    assert needed is not None and 24 * MIB <= needed < 25 * MIB
    assert free is not None and abs(free - free_now) < MIB  # df on the server, as the machine sees it
    said = disk_full.without_room(str(caught.value), "server 6292e648", big_image, needed, free)
    assert said.startswith(
        f"the disk of server 6292e648 has no room for image {big_image} (Docker's data root): it needs 24 MiB, "
        f"{free // MIB} MiB free: "
    ), said


async def test_the_control_planes_own_data_root_is_measured_through_its_engine(server: TestServer):
    """The control plane's engine is measured without SSH and without seeing its data root: a helper container
    of the busybox image mounts it read-only and runs ``df`` (the scheduler may run in a container). Here the
    test server's engine stands for the control plane's (its data root is a file system of its own), so the
    measure is that file system's, not the machine's. Helpers are removed; one a stopped process left is
    removed by the next measure once it is old. This process sees the data root's path too, and the file
    system there is the one the helper measured, so later measures read it here, without a helper (and
    without the image)."""
    server.load_image(busybox_image())
    leave_free(server, 12 * MIB)
    engines = DockerEngines(local_engine(server.docker_host, "v1.41"))
    fleet = Fleet(DockerExecutor(engines), cast(Any, None), cast(Any, None), ssh.SshPool)  # local only: no SSH
    rt = cast(RolloutContext, SimpleNamespace(fleet=fleet))
    only_helpers = {"all": "1", "filters": '{"label": ["berth.data-root-helper"]}'}
    try:
        async with EngineApi.on_unix(str(server.docker_sock), "v1.41") as api:
            root, engine_id = await data_root.root_of(api), (await api.get("info"))["ID"]
            leftover = data_root.helper_body(root)
            await api.json("POST", "containers/create", params={"name": "berth-data-root-left"}, body=leftover)
            assert data_root.seen_here(engine_id, root) is None
            free = await room.free_on(rt, LOCAL_SERVER)
            free_now = shutil.disk_usage(server.root / "data").free
            left = [c["Names"] for c in await api.get("containers/json", only_helpers)]
            again = await data_root.free_by_engine(api, root, stale_after_s=0.0)
            helpers = await api.get("containers/json", only_helpers)
            seen = data_root.seen_here(engine_id, root)
            server.docker("rmi", busybox_image())  # no helper can run now
            os.unlink(server.root / "data" / f"{FILLER}-0")
            read_here = await room.free_on(rt, LOCAL_SERVER)
            assert await data_root.free_by_engine(api, root) is None
    finally:
        await engines.close()
        server.free_disk()
    on_machine = shutil.disk_usage("/var/lib/docker").free
    assert root == str(server.root / "data")
    assert free is not None and abs(free - free_now) < MIB and abs(free - on_machine) > 100 * MIB, (free, free_now)
    assert again is not None and abs(again - free_now) < MIB
    assert left == [["/berth-data-root-left"]]  # a young helper may be another caller's: left alone
    assert helpers == []  # each helper removed once it answered, and the old leftover too
    assert seen is True and read_here is not None and read_here > 100 * MIB, read_here  # the filler gone
