"""Dokploy's own proxy network in a blueprint: ``dokploy-network``, declared ``external``, is the overlay
network Dokploy's Traefik runs on; a blueprint that joins it (drizzle-gateway, emqx) asks to be reached by
that proxy. Berth's proxy reaches every application on the application's own network, so the import drops
the declaration and each service's attachment to it, and says so. Pure."""

from __future__ import annotations

from typing import Any

NAME = "dokploy-network"


def joins(compose: dict[str, Any]) -> bool:
    """Whether the compose file declares Dokploy's network as external."""
    net = (compose.get("networks") or {}).get(NAME)
    return isinstance(net, dict) and net.get("external") is True


def drop(doc: dict[str, Any], notes: list[str]) -> None:
    """Remove the declaration and every service's attachment (in place)."""
    networks = doc.get("networks") or {}
    networks.pop(NAME, None)
    if not networks:
        doc.pop("networks", None)
    for spec in (doc.get("services") or {}).values():
        attached = spec.get("networks") if isinstance(spec, dict) else None
        if isinstance(attached, list) and NAME in attached:
            attached.remove(NAME)
        elif isinstance(attached, dict):
            attached.pop(NAME, None)
        if isinstance(spec, dict) and "networks" in spec and not spec["networks"]:
            spec.pop("networks")
    notes.append(
        f"networks.{NAME}: Dokploy's proxy network, not carried: Berth's proxy reaches the application's own network"
    )
