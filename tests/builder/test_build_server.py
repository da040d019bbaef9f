"""Builds on a build server: the builder keeps its server directory from ``evt.server.changed`` and builds on
that server's Docker engine through its SSH-forwarded socket (a namespace test server with its own dockerd
and sshd): the image is made there, not on the control plane's engine. A build server that cannot be
reached fails the build with a reason that names it."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from berth_common import sealing
from berth_common.catalogue import ServerChanged, StartBuild, sealed_key_aad
from tests.builder.support import Running, build_command, make_repo
from tests.support.testservers import TestServer, running_servers

pytestmark = [pytest.mark.slow, pytest.mark.docker]


@pytest.fixture(scope="module")
def server() -> Iterator[TestServer]:
    with running_servers(1) as [one]:
        yield one


def on_server(cmd: StartBuild, server_id: str) -> StartBuild:
    return cmd.model_copy(update={"source": cmd.source.model_copy(update={"build_server": server_id})})


async def announce(b: Running, server: TestServer, server_id: str, *, port: int = 22, revision: int = 1) -> None:
    """What the api sends when a server was validated; waits until the builder's directory has it."""
    msg = ServerChanged(
        server_id=server_id,
        team_id="team-1",
        name=f"build-{server_id}",
        host=server.address,
        port=port,
        user="root",
        private_key=sealing.seal(server.private_key_pem, sealed_key_aad(server_id)),
        host_key=server.host_key.export_public_key("openssh").decode().strip(),
        state="ready",
        revision=revision,
    )
    await b.api.publish(msg)
    servers = b.handler.pipeline.servers
    for _ in range(200):
        from berth_builder.adapters import tables
        from berth_common import fleet

        async with servers.sessionmaker() as s:
            record = await fleet.server_of(s, tables.servers, server_id)
        if record is not None and record.revision >= revision:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the builder did not record server {server_id}")


def local_has(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False).returncode == 0


async def test_a_build_runs_on_the_build_servers_engine(
    builder_factory: Any, server: TestServer, busybox: str, tmp_path: Any, unique: str, images: list[str]
) -> None:
    server.load_image(busybox)  # the base image is on the build server (no registry here)
    repo = tmp_path / "repo"
    make_repo(
        repo, {"Dockerfile": f"FROM {busybox}\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt\n", "hello.txt": unique}
    )
    b = await builder_factory(allow_local_git=True)
    server_id = f"srv-{unique}"
    await announce(b, server, server_id)
    tag = f"berth-test/remote-{unique}:d1"
    images.append(tag)
    cmd = on_server(build_command(build_id=f"rb-{unique}", repository=str(repo), image_tag=tag), server_id)
    await b.api.publish(cmd)
    evt = await b.result(cmd.build_id, timeout=240)
    assert evt["type"] == "evt.build.succeeded", evt
    remote_id = server.docker("image", "inspect", "--format", "{{.Id}}", tag).strip()
    assert evt["data"]["image_id"] == remote_id
    assert server.docker("run", "--rm", tag, "cat", "/hello.txt").strip() == unique
    assert not local_has(tag)  # made there, not on the control plane's engine
    lines = b.lines(cmd.deployment_id)
    assert f"building on server {server_id}" in lines
    assert any(line.startswith("build context: ") for line in lines)  # streamed as to the local engine

    # The same inputs again on that server: the image there is reused (and checked there).
    again = on_server(
        build_command(build_id=f"rb2-{unique}", repository=str(repo), image_tag=f"{tag}-again"), server_id
    )
    await b.api.publish(again)
    evt2 = await b.result(again.build_id, timeout=120)
    assert evt2["type"] == "evt.build.succeeded" and evt2["data"]["reused"] is True, evt2
    assert server.docker("image", "inspect", "--format", "{{.Id}}", f"{tag}-again").strip() == remote_id

    # A newer revision of the server (here: a port nothing listens on) drops the connection made before.
    await announce(b, server, server_id, port=1, revision=2)
    moved = on_server(build_command(build_id=f"rb3-{unique}", repository=str(repo), image_tag=f"{tag}-3"), server_id)
    await b.api.publish(moved)
    evt3 = await b.result(moved.build_id, timeout=60)
    assert evt3["type"] == "evt.build.failed", evt3
    assert "could not be reached over SSH" in evt3["data"]["reason"]


async def test_an_unusable_build_server_fails_the_build_clearly(
    builder_factory: Any, server: TestServer, tmp_path: Any, unique: str
) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"Dockerfile": "FROM scratch\nCOPY a /a\n", "a": "a"})
    b = await builder_factory(allow_local_git=True, ssh_timeout_s=5.0)
    down = f"down-{unique}"
    await announce(b, server, down, port=1)  # nothing listens there: refused
    cmd = on_server(
        build_command(build_id=f"ub-{unique}", repository=str(repo), image_tag=f"berth-test/u-{unique}:1"), down
    )
    await b.api.publish(cmd)
    evt = await b.result(cmd.build_id, timeout=60)
    assert evt["type"] == "evt.build.failed", evt
    reason = evt["data"]["reason"]
    assert reason.startswith(f"the build server build-{down} (root@{server.address}:1) could not be reached over SSH")
    assert evt["data"]["stage"] == "source"

    unknown = on_server(
        build_command(build_id=f"nb-{unique}", repository=str(repo), image_tag=f"berth-test/n-{unique}:1"), "nowhere"
    )
    await b.api.publish(unknown)
    evt = await b.result(unknown.build_id, timeout=60)
    assert evt["type"] == "evt.build.failed"
    assert evt["data"]["reason"].startswith("the build server 'nowhere' is not known to the builder")


async def test_a_secret_build_arg_reaches_a_step_on_the_build_server(
    builder_factory: Any, server: TestServer, busybox: str, tmp_path: Any, unique: str
) -> None:
    """The BuildKit session that serves secrets is opened on the build server's engine, over the same SSH
    connection."""
    server.load_image(busybox)
    secret = f"remote-{unique}-secret"
    digest = hashlib.sha256(secret.encode()).hexdigest()
    repo = tmp_path / "repo"
    make_repo(
        repo,
        {
            "Dockerfile": f"FROM {busybox}\n"
            "RUN --mount=type=secret,id=API_TOKEN "
            f'test "$(sha256sum < /run/secrets/API_TOKEN | cut -c1-64)" = "{digest}" && echo secret-ok\n'
        },
    )
    b = await builder_factory(allow_local_git=True)
    server_id = f"sec-{unique}"
    await announce(b, server, server_id)
    tag = f"berth-test/remote-secret-{unique}:d1"
    cmd = build_command(
        build_id=f"sb-{unique}", repository=str(repo), image_tag=tag, build_args=[("API_TOKEN", secret, True)]
    )
    await b.api.publish(on_server(cmd, server_id))
    evt = await b.result(cmd.build_id, timeout=180)
    assert evt["type"] == "evt.build.succeeded", evt
    lines = b.lines(cmd.deployment_id)
    assert any(line.endswith(" secret-ok") for line in lines), lines
    assert secret not in server.docker("image", "history", "--no-trunc", tag) and not local_has(tag)
