"""Compose networks with ``internal: true`` as the application's internal network: pure.

An application's services share its private network, from which they reach the internet (and a remote
server's Berth network, which its proxy shares). Every compose network with ``internal: true`` is mapped
onto one more network of the application, its internal network (Docker's ``Internal``: nothing forwarded
out). A service only on internal networks sits on that network only (``internal_network: only``): it
reaches no other network nor the internet, and only the services on the internal network reach it (the
proxy does not). A service on
an internal network and on another sits on both (``also``). A routed service is reached by the proxy, so
it cannot sit on internal networks only (refused naming it). As on any Docker internal network, the
server's own addresses stay reachable from it (the engine forwards nothing, but the server itself answers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from berth_api.domain.compose.keys import ComposeRefusal, not_carried, present


def internal_names(model: Mapping[str, Any]) -> set[str]:
    """The compose networks with ``internal: true``."""
    return {str(k) for k, net in (model.get("networks") or {}).items() if (net or {}).get("internal") is True}


def placement(name: str, svc: Mapping[str, Any], internal: set[str], routed: bool) -> str | None:
    """``only``, ``also`` or None (the private network only) for the compose service ``name``."""
    joined = set(svc.get("networks") or {"default": None})
    inside = joined & internal
    if not inside:
        return None
    if inside != joined:
        return "also"
    if routed:
        raise ComposeRefusal(
            f"services/{name}/networks",
            "a routed service is reached by the proxy: it cannot sit on internal networks only (add a network "
            "that is not internal, or route another service)",
        )
    return "only"


def top_level(model: Mapping[str, Any], notes: list[str]) -> None:
    """Check the top-level ``networks``: each is the application's private network, or its internal one
    (``internal: true``); its ``driver_opts`` and ``ipam``: ``network_options``; a key that would make it more (a
    driver, attachable ...) is refused by name."""
    for key, net in (model.get("networks") or {}).items():
        for k, v in sorted((net or {}).items(), key=lambda kv: kv[0] == "name"):  # the name last
            if (k == "name" and v == f"berth_{key}") or (k == "driver" and v == "bridge") or not present(v):
                continue
            if k in ("driver_opts", "ipam"):
                continue  # the private network's options (``network_options``)
            if k == "name":  # as a volume's: the name other stacks would join it by, which Berth gives itself
                notes.append(f"networks/{key}/name: not carried: Berth names the application's private network")
                continue
            if k == "internal" and v is True:
                continue  # the application's internal network (``placement``)
            raise not_carried(f"networks/{key}/{k}", "the application has one private network")
        if (net or {}).get("internal") is True:
            notes.append(f"networks/{key}: mapped to the application's internal network (nothing forwarded out)")
        elif key != "default":
            notes.append(f"networks/{key}: mapped to the application's private network")
