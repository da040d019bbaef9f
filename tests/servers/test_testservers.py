"""The namespace test servers behave as remote hosts: their own address, engine and sshd."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import asyncssh
import pytest

from tests.support.testservers import running_servers

pytestmark = pytest.mark.slow


def test_a_namespace_server_has_its_own_engine_and_sshd(tmp_path):
    with running_servers(1) as [server]:

        async def probe() -> tuple[str, dict]:
            known = asyncssh.import_known_hosts(
                f"{server.address} {server.host_key.export_public_key('openssh').decode()}"
            )
            async with asyncssh.connect(
                server.address,
                username="root",
                client_keys=[server.client_key],
                known_hosts=known,
            ) as conn:
                out = await conn.run("docker info --format '{{.DockerRootDir}}'", check=True)
                local = str(tmp_path / "fwd.sock")
                listener = await conn.forward_local_path(local, "/var/run/docker.sock")
                try:
                    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=local)) as http:
                        async with http.get("http://docker/version") as resp:
                            version = json.loads(await resp.text())
                finally:
                    listener.close()
                return str(out.stdout).strip(), version

        root_dir, version = asyncio.run(probe())
        assert root_dir == str(server.root / "data")
        assert version["ApiVersion"]


def test_a_crashed_servers_containers_are_gone_with_it():
    """Its engine and the containers' shims killed (a crash), a container lives on in namespaces of its
    own; removing the server ends it too (it would hold the server's mounts, and its disk, for good)."""
    from tests.support.images import busybox_image
    from tests.support.testservers import _container_processes

    image = busybox_image()
    with running_servers(1, with_sshd=False) as [server]:
        server.load_image(image)
        server.docker("run", "-d", "--name", "survivor", image, "sleep", "600")
        server.crash()
        time.sleep(0.5)
        left = _container_processes(server.root)
        assert left, "the container's process outlives the crash"
        root = server.root
    assert _container_processes(root) == []
