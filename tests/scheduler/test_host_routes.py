"""A pinned subnet against a server's own routes (``domain/host_routes.py``): the route table and fib_trie as
the kernel prints them, parsed exactly; the overlap decision; the helper's create body, exact; and the
helper on this machine's engine reads this machine's own tables (the test runs in the host's namespace), not
a container's, and leaves nothing behind."""

from __future__ import annotations

import subprocess
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from berth_scheduler.adapters.docker import DockerExecutor
from berth_scheduler.adapters.host_routes import read_host_network
from berth_scheduler.domain import host_routes as dom
from berth_scheduler.domain.host_routes import HostNetwork, HostRoute

# /proc/net/route of a server on the LAN 192.168.1.0/24 (default via .1), with Docker's bridge, one
# application network (br-0123456789ab, 10.50.0.0/24), a VPN's 10.8.0.0/16 and an unreachable /32
ROUTE = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\t\t\n"
    "eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\t\t\n"
    "eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\t\t\n"
    "docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\t\t\n"
    "br-0123456789ab\t0000320A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\t\t\n"
    "tun0\t0000080A\t0200080A\t0003\t0\t0\t0\t0000FFFF\t0\t0\t0\t\t\n"
    "*\t0808080A\t00000000\t0201\t0\t0\t0\tFFFFFFFF\t0\t0\t0\t\t\n"
)
FIB_TRIE = """Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 10.50.0.0/24 2 0 2
        |-- 10.50.0.1
           /32 host LOCAL
     |-- 10.99.0.7
        /32 host LOCAL
     +-- 127.0.0.0/8 2 0 2
        |-- 127.0.0.1
           /32 host LOCAL
     +-- 192.168.1.0/24 2 0 2
        |-- 192.168.1.0
           /24 link UNICAST
        |-- 192.168.1.20
           /32 host LOCAL
        |-- 192.168.1.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 192.168.1.20
        /32 host LOCAL
"""
HOST = dom.parse(ROUTE + FIB_TRIE)


def test_the_route_table_and_the_addresses_are_parsed_exactly():
    assert HOST == HostNetwork(
        routes=(
            HostRoute(IPv4Network("10.8.0.0/16"), "tun0"),
            HostRoute(IPv4Network("10.8.8.8/32"), "*"),
            HostRoute(IPv4Network("10.50.0.0/24"), "br-0123456789ab"),
            HostRoute(IPv4Network("172.17.0.0/16"), "docker0"),
            HostRoute(IPv4Network("192.168.1.0/24"), "eth0"),
        ),
        addresses=(IPv4Address("10.50.0.1"), IPv4Address("10.99.0.7"), IPv4Address("192.168.1.20")),
    )
    assert dom.parse("garbage\tline\n\n") == HostNetwork((), ())


def test_the_server_s_lan_is_refused_naming_the_subnet_and_the_route():
    reason = dom.overlap("192.168.1.0/24", "server s1", HOST)
    assert reason == (
        "the compose file pins the subnet 192.168.1.0/24 for the application's network, which overlaps the route "
        "192.168.1.0/24 dev eth0 of server s1: the server would send that range into the application's network "
        "and lose its own; pin a subnet the server does not use"
    )
    # a part of a routed range, and a range holding a route, overlap as well
    assert "the route 10.8.0.0/16 dev tun0 of server s1" in str(dom.overlap("10.8.4.0/24", "server s1", HOST))
    assert "the route 192.168.1.0/24 dev eth0" in str(dom.overlap("192.168.0.0/16", "server s1", HOST))


def test_an_address_of_the_server_with_no_route_of_its_own_is_refused():
    assert dom.overlap("10.99.0.0/24", "server s1", HOST) == (
        "the compose file pins the subnet 10.99.0.0/24 for the application's network, which holds the address "
        "10.99.0.7 of server s1: pin a subnet the server does not use"
    )


def test_a_free_subnet_passes_and_the_default_route_does_not_count():
    assert dom.overlap("10.200.0.0/24", "server s1", HOST) is None
    assert dom.overlap("172.31.0.0/16", "server s1", HOST) is None


def test_the_application_s_own_bridge_does_not_count_another_bridge_does():
    own = dom.own_bridge({"Id": "0123456789abcdef0123", "Options": {}})
    assert own == "br-0123456789ab"
    assert dom.overlap("10.50.0.0/24", "server s1", HOST, own) is None  # a redeploy: its network is there
    assert "the route 10.50.0.0/24 dev br-0123456789ab" in str(dom.overlap("10.50.0.0/24", "server s1", HOST))
    assert dom.own_bridge({"Id": "ffff", "Options": {dom.BRIDGE_NAME_OPTION: "appbr"}}) == "appbr"
    assert dom.own_bridge({}) is None


def test_the_helper_reads_the_host_s_tables_and_nothing_else():
    assert dom.helper_body() == {
        "Image": "berth/busybox:1",
        "Cmd": ["cat", "/proc/net/route", "/proc/net/fib_trie"],
        "Entrypoint": [],
        "User": "65534:65534",
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": False,
        "Labels": {"berth.managed": "true", "berth.host-routes-helper": "routes"},
        "HostConfig": {
            "NetworkMode": "host",
            "ReadonlyRootfs": True,
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"],
            "AutoRemove": False,
        },
    }


@pytest.mark.docker
async def test_the_helper_on_the_engine_reads_the_host_s_own_routes(docker: DockerExecutor, busybox: str) -> None:
    def own() -> dom.HostNetwork:
        return dom.parse(Path("/proc/net/route").read_text() + Path("/proc/net/fib_trie").read_text())

    for _ in range(5):  # other tests on this machine add and remove bridges: a read with none changing
        before, read, after = own(), await read_host_network(docker), own()
        if before == after:
            break
    assert read == before and read.routes  # a container's namespace would show its bridge's route only
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={dom.ROUTES_LABEL}"], capture_output=True, text=True, check=True
    )
    assert left.stdout.strip() == ""
