"""Compose networks' ``driver_opts`` and ``ipam``, and a service's pinned ``ipv4_address``: pure.

Every compose network but an internal one is the application's private network (``internal_networks``),
so what they pin is that network's:

- ``driver_opts``: ``com.docker.network.driver.mtu`` (the network's MTU, 576 to 9216) is carried; every
  other option is refused by name (``com.docker.network.bridge.name`` names an interface of the server,
  which another network or the server may have; the others change the server's forwarding or bindings).
- ``ipam``: one IPv4 ``subnet`` (and its ``gateway``) is the private network's subnet. It is a private
  range (10/8, 172.16/12, 192.168/16) of /16 to /28, outside the subnet of Docker's default bridge
  (172.17.0.0/16); the engine refuses, when the network is made, a subnet that overlaps another network of
  the server (Berth's own networks come from the engine's address pools). Two networks pinning two subnets,
  ``ip_range``, ``aux_addresses``, IPAM options, another driver or an IPv6 subnet are refused by name.
- ``ipv4_address`` of a service on such a network: its address there (in the subnet, not the gateway, one
  service's only); the service then runs one replica and is recreated on a deployment (two containers
  cannot hold one address).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from berth_api.domain.compose.keys import ComposeRefusal, not_carried, present

MTU = "com.docker.network.driver.mtu"
OPTION_WHY = {
    "com.docker.network.bridge.name": "it names an interface of the server, which another network may have",
}
PRIVATE = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
DEFAULT_BRIDGE = ipaddress.IPv4Network("172.17.0.0/16")  # docker0, the engine's default bridge
MIN_PREFIX, MAX_PREFIX = 16, 28


def top_level(model: Mapping[str, Any]) -> dict[str, Any]:
    """The private network's options the compose networks pin (``subnet``, ``gateway``, ``mtu``; empty:
    none); raises ``ComposeRefusal`` naming what cannot be honoured."""
    out: dict[str, Any] = {}
    for key, net in (model.get("networks") or {}).items():
        net = net or {}
        internal = net.get("internal") is True
        for option, value in (net.get("driver_opts") or {}).items():
            spot = f"networks/{key}/driver_opts/{option}"
            if option != MTU:
                raise not_carried(spot, OPTION_WHY.get(option, "Berth carries com.docker.network.driver.mtu only"))
            if internal:
                raise not_carried(spot, "the internal network keeps the engine's MTU")
            _agree(out, "mtu", _mtu(spot, value), spot)
        if present(net.get("ipam")):
            if internal:
                raise not_carried(f"networks/{key}/ipam", "the internal network takes its subnet from the engine")
            for k, v in _ipam(f"networks/{key}/ipam", net["ipam"]).items():
                _agree(out, k, v, f"networks/{key}/ipam")
    return out


def _agree(out: dict[str, Any], key: str, value: Any, spot: str) -> None:
    if out.setdefault(key, value) != value:
        raise ComposeRefusal(spot, f"the networks are the application's one private network: its {key} is {out[key]}")


def _mtu(spot: str, value: Any) -> int:
    try:
        mtu = int(str(value))
    except ValueError:
        raise ComposeRefusal(spot, f"{value!r} is not a number") from None
    if not 576 <= mtu <= 9216:
        raise ComposeRefusal(spot, "an MTU is 576 to 9216")
    return mtu


def _ipam(spot: str, ipam: Mapping[str, Any]) -> dict[str, str]:
    for k, v in ipam.items():
        if k == "driver" and v == "default":
            continue
        if k != "config" and present(v):
            raise not_carried(f"{spot}/{k}", "Berth carries one subnet and its gateway (ipam config)")
    configs = list(ipam.get("config") or [])
    if len(configs) != 1:
        raise ComposeRefusal(f"{spot}/config", "Berth carries one IPv4 subnet per application")
    config = configs[0] or {}
    for k, v in config.items():
        if k not in ("subnet", "gateway") and present(v):
            raise not_carried(f"{spot}/config/0/{k}", "Berth carries the subnet and its gateway")
    subnet = _subnet(f"{spot}/config/0/subnet", config.get("subnet"))
    out = {"subnet": str(subnet)}
    if present(config.get("gateway")):
        gateway = _address(f"{spot}/config/0/gateway", config["gateway"], subnet)
        if gateway in (subnet.network_address, subnet.broadcast_address):
            raise ComposeRefusal(f"{spot}/config/0/gateway", "a gateway is a host address of the subnet")
        out["gateway"] = str(gateway)
    return out


def _subnet(spot: str, value: Any) -> ipaddress.IPv4Network:
    try:
        subnet = ipaddress.IPv4Network(str(value or ""), strict=True)
    except ValueError as exc:
        raise ComposeRefusal(spot, f"an IPv4 subnet (10.20.0.0/24): {exc}") from None
    if not any(subnet.subnet_of(p) for p in PRIVATE):
        raise ComposeRefusal(spot, "a subnet of a private range: 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16")
    if not MIN_PREFIX <= subnet.prefixlen <= MAX_PREFIX:
        raise ComposeRefusal(spot, f"a subnet of /{MIN_PREFIX} to /{MAX_PREFIX}")
    if subnet.overlaps(DEFAULT_BRIDGE):
        raise ComposeRefusal(spot, f"the subnet overlaps {DEFAULT_BRIDGE}, Docker's default bridge on the server")
    return subnet


def _address(spot: str, value: Any, subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    try:
        address = ipaddress.IPv4Address(str(value))
    except ValueError as exc:
        raise ComposeRefusal(spot, f"an IPv4 address: {exc}") from None
    if address not in subnet:
        raise ComposeRefusal(spot, f"{address} is not in the subnet {subnet}")
    return address


def pinned_address(name: str, svc: Mapping[str, Any], options: Mapping[str, Any], internal: set[str]) -> str | None:
    """The address the compose service ``name`` pins on the private network (None: the engine's choice);
    refused when no subnet is pinned, it is not a free host address of it, on an internal network, or the
    service runs more than one replica."""
    found: str | None = None
    for net, attach in (svc.get("networks") or {}).items():
        value = (attach or {}).get("ipv4_address")
        if not present(value):
            continue
        spot = f"services/{name}/networks/{net}/ipv4_address"
        if net in internal:
            raise not_carried(spot, "the internal network takes its addresses from the engine")
        if int((svc.get("deploy") or {}).get("replicas") or 1) != 1:
            raise ComposeRefusal(spot, "a pinned address is one container's: the service runs 1 replica")
        if "subnet" not in options:
            raise ComposeRefusal(spot, "an address is pinned in a subnet the network pins (ipam config subnet)")
        subnet = ipaddress.IPv4Network(options["subnet"])
        address = _address(spot, value, subnet)
        if address in (subnet.network_address, subnet.broadcast_address) or str(address) == options.get("gateway"):
            raise ComposeRefusal(spot, f"{address} is the subnet's network, broadcast or gateway address")
        if found is not None and found != str(address):
            raise ComposeRefusal(spot, "a service has one address on the application's private network")
        found = str(address)
    return found
