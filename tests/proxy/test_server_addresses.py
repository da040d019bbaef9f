"""The local server's addresses for the DNS check before ACME: the machine's interfaces' addresses (from
``ip -j addr`` or ``/proc/net/if_inet6``) less loopback, link-local and Docker's own interfaces, plus the
public addresses the operator names for a machine behind NAT."""

from __future__ import annotations

import json

import pytest

from berth_common.catalogue import ApplyRoutes
from berth_common.catalogue.tls import TlsOptions
from berth_proxy_sync.adapters import interfaces
from berth_proxy_sync.domain.addresses import (
    from_if_inet6,
    from_ip_json,
    parse_addresses,
    reachable,
    server_addresses,
)
from berth_proxy_sync.settings import ProxySyncSettings
from berth_proxy_sync.usecases.https import NAT_HINT, Https

IP_JSON = json.dumps(
    [
        {
            "ifname": "lo",
            "addr_info": [
                {"family": "inet", "local": "127.0.0.1", "scope": "host"},
                {"family": "inet6", "local": "::1", "scope": "host"},
            ],
        },
        {"ifname": "ifb0", "addr_info": []},
        {
            "ifname": "eth0",
            "addr_info": [
                {"family": "inet", "local": "203.0.113.7", "scope": "global"},
                {"family": "inet", "local": "192.168.1.20", "scope": "global"},
                {"family": "inet6", "local": "2001:db8::7", "scope": "global"},
                {"family": "inet6", "local": "fe80::fc:ff:fe00:1", "scope": "link"},
            ],
        },
        {"ifname": "docker0", "addr_info": [{"family": "inet", "local": "172.17.0.1", "scope": "global"}]},
        {"ifname": "br-3f2a9c1d0b7e", "addr_info": [{"family": "inet", "local": "172.18.0.1", "scope": "global"}]},
        {"ifname": "docker_gwbridge", "addr_info": [{"family": "inet", "local": "172.19.0.1", "scope": "global"}]},
        {"ifname": "veth0ed41fa", "addr_info": [{"family": "inet6", "local": "fe80::dc57:3eff:feed:2d6a"}]},
        {"ifname": "wg0", "addr_info": [{"family": "inet", "local": "10.8.0.1", "scope": "global"}]},
        {"ifname": "eth1", "addr_info": [{"family": "link", "local": "aa:bb"}]},
    ]
)

IF_INET6 = """\
00000000000000000000000000000001 01 80 10 80       lo
20010db8000000000000000000000007 02 40 00 00     eth0
fe8000000000000000fc00fffe000001 02 40 20 80     eth0
fe80000000000000dc573efffeed2d6a 40c2 40 20 c0 veth0ed41fa
fd000000000000000000000000000002 05 40 00 00   br-3f2a9c1d0b7e
"""


def test_the_pairs_of_ip_json():
    assert from_ip_json(IP_JSON) == [
        ("lo", "127.0.0.1"),
        ("lo", "::1"),
        ("eth0", "203.0.113.7"),
        ("eth0", "192.168.1.20"),
        ("eth0", "2001:db8::7"),
        ("eth0", "fe80::fc:ff:fe00:1"),
        ("docker0", "172.17.0.1"),
        ("br-3f2a9c1d0b7e", "172.18.0.1"),
        ("docker_gwbridge", "172.19.0.1"),
        ("veth0ed41fa", "fe80::dc57:3eff:feed:2d6a"),
        ("wg0", "10.8.0.1"),
    ]


def test_the_pairs_of_proc_net_if_inet6():
    assert from_if_inet6(IF_INET6 + "garbage line\n") == [
        ("lo", "::1"),
        ("eth0", "2001:db8::7"),
        ("eth0", "fe80::fc:ff:fe00:1"),
        ("veth0ed41fa", "fe80::dc57:3eff:feed:2d6a"),
        ("br-3f2a9c1d0b7e", "fd00::2"),
    ]


def test_the_machines_own_addresses_leave_out_loopback_link_local_and_dockers():
    assert server_addresses(from_ip_json(IP_JSON)) == ["10.8.0.1", "192.168.1.20", "203.0.113.7", "2001:db8::7"]
    assert server_addresses(from_if_inet6(IF_INET6)) == ["2001:db8::7"]


def test_the_public_addresses_of_a_machine_behind_nat_are_added_once():
    pairs = [("eth0", "192.168.1.20"), ("lo", "127.0.0.1")]
    assert server_addresses(pairs, ["198.51.100.4", "2001:db8::1", "192.168.1.20"]) == [
        "192.168.1.20",
        "198.51.100.4",
        "2001:db8::1",
    ]
    assert server_addresses([], ["198.51.100.4"]) == ["198.51.100.4"]
    assert server_addresses([("lo", "127.0.0.1"), ("docker0", "172.17.0.1")]) == []


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("203.0.113.7", True),
        ("10.0.0.1", True),
        ("127.0.0.53", False),
        ("169.254.1.1", False),
        ("fe80::1%eth0", False),
        ("ff02::1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("2001:db8::7", True),
    ],
)
def test_which_addresses_a_record_may_point_at(address, ok):
    assert reachable(address) is ok


def test_the_public_addresses_setting_is_checked():
    assert parse_addresses(" 198.51.100.4, 2001:DB8::1 203.0.113.9,", "X") == [
        "198.51.100.4",
        "2001:db8::1",
        "203.0.113.9",
    ]
    assert parse_addresses("", "X") == []
    with pytest.raises(ValueError, match=r"BERTH_PUBLIC_ADDRESSES: 'my\.host' is not an IP address"):
        parse_addresses("198.51.100.4,my.host", "BERTH_PUBLIC_ADDRESSES")
    settings = ProxySyncSettings(public_addresses="198.51.100.4", tls_server_addresses="")
    assert settings.public_address_list == ["198.51.100.4"] and settings.server_addresses == []
    with pytest.raises(ValueError, match="is not an IP address"):
        ProxySyncSettings(public_addresses="nat.example.com")


async def test_a_refusal_names_the_setting_a_machine_behind_nat_needs():
    # "localhost" resolves to loopback through the system's resolver: never one of the server's addresses
    msg = ApplyRoutes(
        route_id="app", hosts=["localhost"], upstreams=["http://10.0.0.5:8080"], tls=TlsOptions(acme=True)
    )
    found = await Https(["192.0.2.1"], addresses_found=True).check(None, msg)  # type: ignore[arg-type]
    named = await Https(["192.0.2.1"]).check(None, msg)  # type: ignore[arg-type]
    assert not found["localhost"].ok and not named["localhost"].ok
    assert found["localhost"].reason == named["localhost"].reason + NAT_HINT
    assert "BERTH_PUBLIC_ADDRESSES" in NAT_HINT and "BERTH_PUBLIC_ADDRESSES" not in named["localhost"].reason


async def test_this_machines_interfaces_are_read_by_ip_and_from_the_kernel():
    by_ip = await interfaces.interface_addresses()
    by_kernel = interfaces._from_kernel()
    assert ("lo", "127.0.0.1") in by_ip and ("lo", "127.0.0.1") in by_kernel
    # the kernel's tables give each interface's primary IPv4 address and every IPv6 one: all ip shows
    assert set(by_kernel) <= set(by_ip)
    assert "127.0.0.1" not in server_addresses(by_ip)
