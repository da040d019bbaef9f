"""The port sweeper on a real engine (a test server's dockerd in its own network namespace): a port of a Berth
network's bridge whose namespace has nothing of the engine's in it (a namespace held by a mount alone, as one
the kernel has not yet ended is held by nothing of the engine's either) is deleted; the ports of the engine's
containers (one running as root, one as another user), a veth pair that never left the server's namespace, a
port of a bridge that is not Berth's, and a port that appeared only after the sweeper's first look are left,
and the container behind its port still answers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from berth_common.images import BUSYBOX_IMAGE
from berth_scheduler.adapters.docker import DockerExecutor
from berth_scheduler.adapters.lost_tasks import end_stale_ports
from tests.support.images import busybox_image
from tests.support.server_executor import server_executor
from tests.support.testservers import TestServer, running_servers

pytestmark = pytest.mark.slow

SERVER_ID = "57a1e9a7"
SUBNET = "172.31.7"


@pytest.fixture(scope="module")
def server() -> Iterator[TestServer]:
    busybox_image()
    with running_servers(1, with_sshd=False) as (one,):
        one.load_image(BUSYBOX_IMAGE)
        one.docker("network", "create", "--label", "berth.managed=true", "--subnet", f"{SUBNET}.0/24", "ours")
        one.docker("network", "create", "--label", "other=true", "theirs")
        yield one


@pytest.fixture
async def docker(server: TestServer) -> AsyncIterator[DockerExecutor]:
    async with server_executor(server, SERVER_ID) as executor:
        yield executor


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=True).stdout


def bridge(server: TestServer, network: str) -> str:
    return "br-" + server.docker("network", "inspect", "-f", "{{.Id}}", network).strip()[:12]


def ports(server: TestServer, network: str) -> list[str]:
    """The names of the ports of the network's bridge in the server's namespace."""
    out = ip("-n", server.name, "-o", "link", "show", "master", bridge(server, network))
    return sorted(line.split(": ")[1].split("@")[0] for line in out.splitlines())


def stale_port(server: TestServer, network: str, port: str, namespace: str, host: int) -> None:
    """A veth pair whose one end is a port of the network's bridge and whose other end, with the address
    ``host`` of the subnet, is in a namespace of its own that no process is in (held by its mount under
    /run/netns). Made in the server's namespace and then moved, as the engine makes a container's: the moved
    end keeps its index."""
    ip("netns", "add", namespace)
    ip("-n", server.name, "link", "add", port, "type", "veth", "peer", "name", f"{port}p")
    ip("-n", server.name, "link", "set", f"{port}p", "netns", namespace)
    ip("-n", server.name, "link", "set", port, "master", bridge(server, network), "up")
    ip("-n", namespace, "link", "set", f"{port}p", "up")
    ip("-n", namespace, "addr", "add", f"{SUBNET}.{host}/24", "dev", f"{port}p")


# from the server's namespace: whether the container's page says "here"
FETCH = "import sys, urllib.request as u; print(b'here' in u.urlopen(sys.argv[1], timeout=5).read())"


def answers(server: TestServer, address: str) -> bool:
    argv = ["ip", "netns", "exec", server.name, sys.executable, "-c", FETCH, f"http://{address}:8080/"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout.strip() == "True"


async def test_only_the_ports_nothing_of_the_engine_is_behind_are_deleted(server: TestServer, docker: DockerExecutor):
    namespaces = [f"{server.name}-s{n}" for n in range(3)]
    serve = ["sh", "-c", "mkdir /w && echo here > /w/index.html && exec httpd -f -p 8080 -h /w"]
    try:
        server.docker("run", "-d", "--name", "web", "--network", "ours", BUSYBOX_IMAGE, *serve)
        server.docker("run", "-d", "--name", "user", "-u", "1000", "--network", "ours", BUSYBOX_IMAGE, "sleep", "600")
        address = server.docker("inspect", "-f", "{{.NetworkSettings.Networks.ours.IPAddress}}", "web").strip()
        own = ports(server, "ours")  # the two containers'
        assert len(own) == 2
        stale_port(server, "ours", "stale0", namespaces[0], 200)
        stale_port(server, "theirs", "stale1", namespaces[1], 201)  # not a Berth bridge
        ip("-n", server.name, "link", "add", "pair0", "type", "veth", "peer", "name", "pair1")  # never moved
        ip("-n", server.name, "link", "set", "pair0", "master", bridge(server, "ours"), "up")

        sweep = asyncio.create_task(end_stale_ports(docker))
        deadline = time.monotonic() + 60
        while "berth-port-sweeper" not in server.docker("ps", "--format", "{{.Names}}"):
            assert time.monotonic() < deadline and not sweep.done(), "the port sweeper never ran"
            await asyncio.sleep(0.1)
        await asyncio.sleep(2)  # its first look is over: a port stale from now on is in its second look only
        stale_port(server, "ours", "late0", namespaces[2], 202)
        deleted = await sweep

        assert deleted == ["stale0"]
        assert ports(server, "ours") == sorted([*own, "late0", "pair0"])
        assert "stale1" in ports(server, "theirs")
        assert answers(server, address)
        for name in ("web", "user"):
            assert server.docker("inspect", "-f", "{{.State.Running}}", name).strip() == "true"
        assert await end_stale_ports(docker) == ["late0"]  # stale on both of the next sweep's looks
        assert ports(server, "ours") == sorted([*own, "pair0"])
    finally:
        server.docker("rm", "-f", "web", "user")
        for namespace in namespaces:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        for port in ("stale0", "stale1", "late0", "pair0"):
            subprocess.run(["ip", "-n", server.name, "link", "del", port], capture_output=True)
