"""A full disk on a server met while an image is streamed to it, or while a build sends it its context: the
engine just drops the connection (a broken pipe, which reads as an engine gone away and is retried), so
Berth asks the engine (``berth_common.docker.disk_full.probe``) and the failure names the full disk; a build
step that fills the disk is named from its own output. The server is a namespace test server whose engine's
data root is a 128 MB file system of its own (filled, or filled by the build)."""

from __future__ import annotations

import io
import os
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from berth_builder.adapters.docker import DockerClient
from berth_builder.domain.progress import BuildStream, build_failure_reason
from berth_builder.domain.request import BuildRequest
from berth_common import image_delivery as d
from berth_common.docker import DockerEngines, local_engine
from berth_common.docker.api import EngineApi
from berth_common.docker.disk_full import probe
from berth_common.docker.engine import Engine, endpoint
from berth_common.docker.wire import EngineError
from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError, explained
from berth_scheduler.domain.containers import ContainerSpec
from tests.support.images import busybox_image
from tests.support.testservers import TestServer, make_net, remove_net, start_server, stop_server

pytestmark = pytest.mark.slow


@pytest.fixture
def small_server() -> Iterator[TestServer]:
    net = make_net()
    server = start_server(net, 2, with_sshd=False, data_mb=128)
    try:
        yield server
    finally:
        stop_server(server)
        remove_net(net)


def build_context(path: Path) -> Path:
    """A context of 8 MB (more than the engine's socket buffers hold: it must be stored as it comes)."""
    with tarfile.open(path, "w") as tar:
        for name, data in (("Dockerfile", b"FROM scratch\nCOPY blob /blob\n"), ("blob", os.urandom(8 << 20))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


async def test_a_full_disk_is_named_during_an_image_transfer_and_a_build(small_server: TestServer, tmp_path: Path):
    image = busybox_image()
    target = str(small_server.docker_sock)
    async with EngineApi.on_unix(target, "v1.41") as api:
        assert await probe(api) is None  # room: the probe says nothing (and leaves nothing)
    small_server.fill_disk()

    # the image transfer: a DiskFullError in the engine's words, named with the server by the scheduler
    with pytest.raises(d.DiskFullError, match="no space left on device") as caught:
        await d.deliver_image("/var/run/docker.sock", target, image, timeout=120)
    said = explained(str(caught.value), "6292e648")
    assert said.startswith("the disk of server 6292e648 is full (Docker's data root): the target engine has no ")

    # the build: its context cannot be stored; the failure says so instead of a dropped connection
    client = DockerClient(DockerEngines(local_engine(f"unix://{target}", "v1.41")))
    request = BuildRequest(tag="berth/disk-full:1", dockerfile="Dockerfile", buildargs={}, labels={}, engine="legacy")
    stream = BuildStream()
    seen: list[dict[str, Any]] = []

    async def on_object(obj: dict[str, Any]) -> None:
        seen.append(obj)
        stream.feed(obj)

    await client.build(request, build_context(tmp_path / "context.tar"), on_object)
    assert stream.error is not None and "no space left on device" in stream.error, seen
    reason = build_failure_reason(stream.error, stream.tail, [])
    assert reason.startswith("the disk of the build server is full (Docker's data root): free space there"), reason

    # room again: the same image arrives
    small_server.free_disk()
    assert await d.deliver_image("/var/run/docker.sock", target, image, timeout=120) > 1_000_000


def dockerfile_context(path: Path, dockerfile: str) -> Path:
    with tarfile.open(path, "w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


async def test_a_build_that_fills_the_disk_or_meets_it_full_names_it(small_server: TestServer, tmp_path: Path):
    """BuildKit (Berth's default) and the classic builder: a step that writes more than the disk holds fails
    by its exit code only, and the engine removes what it wrote; its output names the full disk. BuildKit on
    a disk already full cannot store the context (the classic builder's case is the test above)."""
    image = busybox_image()
    small_server.load_image(image)
    client = DockerClient(DockerEngines(local_engine(small_server.docker_host, "v1.41")))
    filling = dockerfile_context(tmp_path / "fill.tar", f"FROM {image}\nRUN dd if=/dev/zero of=/big bs=1M count=200\n")

    async def failed_build(engine: Literal["buildkit", "legacy"], context: Path) -> str:
        request = BuildRequest(tag="berth/disk-full:2", dockerfile="Dockerfile", buildargs={}, labels={}, engine=engine)
        stream = BuildStream()

        async def on_object(obj: dict[str, Any]) -> None:
            stream.feed(obj)

        await client.build(request, context, on_object)
        assert stream.error is not None
        return build_failure_reason(stream.error, stream.tail, [])

    for engine in ("buildkit", "legacy"):
        reason = await failed_build(engine, filling)
        assert reason.startswith("a build step ran out of disk space on the build server (Docker's data root"), reason
        assert "No space left on device" in reason  # the step's own words, in its last lines

    small_server.fill_disk()
    reason = await failed_build("buildkit", build_context(tmp_path / "context.tar"))
    assert reason.startswith("the disk of the build server is full (Docker's data root): free space there"), reason


OVERLAY_WORDS = (  # what an engine answered a create on a full disk in a chaos run: overlay2's mkdir failed unsaid
    "chown /data/overlay2/196e4b6667def638da66990020afded075f935c0bc62fc0803627d9efdceb8ea/work/work: "
    "no such file or directory"
)


async def test_a_refusal_whose_words_do_not_say_why_names_the_full_disk_the_probe_finds(small_server: TestServer):
    """A create (or start, volume, files put in) refused for a fault of the engine whose words do not say the
    disk is full is followed by the probe: on a full disk the failure names it, with the engine's words after;
    on a disk with room it is left as the engine said it. Then a create on the full disk as the engine answers
    it, whatever its words: named the same way."""
    image = busybox_image()
    small_server.load_image(image)
    engines = DockerEngines(local_engine(None))
    await engines.add(Engine(endpoint(small_server.docker_host), "v1.41", "6292e648"))
    docker = DockerExecutor(engines, "6292e648")
    spec = ContainerSpec("berth-full-web-1", "web", "web", 1, {"Image": image, "Cmd": ["sleep", "60"]})
    made = docker._create

    def refused(_spec: ContainerSpec) -> Any:
        async def answer() -> None:
            raise EngineError(500, OVERLAY_WORDS)

        return answer()

    docker._create = refused  # type: ignore[method-assign]
    with pytest.raises(DockerOperationError) as room:
        await docker.create(spec)
    assert str(room.value) == f"docker create berth-full-web-1: {OVERLAY_WORDS}"  # room: as the engine said it

    small_server.fill_disk()
    with pytest.raises(DockerOperationError) as full:
        await docker.create(spec)
    said = (
        re.escape("the disk of server 6292e648 is full (Docker's data root): ")
        + r"mkdir \S+: "
        + re.escape(f"no space left on device; docker create berth-full-web-1: {OVERLAY_WORDS}")
    )  # the probe's words (its spooled file's mkdir under the data root), then the refusal's
    assert re.fullmatch(said, str(full.value)), full.value
    docker._create = made  # type: ignore[method-assign]
    with pytest.raises(DockerOperationError) as real:
        await docker.create(spec)
    assert str(real.value).startswith("the disk of server 6292e648 is full (Docker's data root): "), real.value
