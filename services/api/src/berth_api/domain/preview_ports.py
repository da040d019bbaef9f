"""The preview hosts of a compose service's other routed ports (pure): each port's host from the preview's
pattern, named as a further service ``<service>-<port>`` (as ``hosts.port_host`` names the application's),
kept among the preview's hosts under ``<service>:<port>`` (``port_key``; a slug has no ``:``), where
``host_claims`` finds it."""

from __future__ import annotations

from typing import Any

from berth_api.domain.hosts import port_host
from berth_api.domain.previews import preview_host


def port_key(service: str, port: int) -> str:
    """The key of another routed port's preview host among the preview's hosts (``preview_hosts``: service
    -> host, and ``<service>:<port>`` -> host; a slug has no ``:``)."""
    return f"{service}:{port}"


def port_preview_hosts(
    config: dict[str, Any], pattern: str, number: int, app: str, env: str, base: str
) -> dict[str, str]:
    """The preview hosts of the application's other routed ports (``port_key`` -> host), from the pattern
    as a further service's host is, the service being ``<service>-<port>`` (as ``hosts.port_host`` names a
    port's generated host): ``web-9001-pr-4-shop.example.com``."""
    return {
        port_key(svc["name"], entry["port"]): preview_host(
            pattern, number, app, env, f"{svc['name']}-{entry['port']}", base, False
        )
        for svc in config["services"]
        if svc.get("kind") == "web"
        for entry in svc.get("port_hosts") or []
    }


def port_generated_hosts(config: dict[str, Any], app: str, env: str, base: str) -> dict[str, str]:
    """The application's generated hosts of other routed ports (``port_key`` -> ``hosts.port_host``): a
    service routed under a path of one keeps that path under the port's preview host."""
    return {
        port_key(svc["name"], e["port"]): port_host(svc["name"], e["port"], app, env, base)
        for svc in config["services"]
        if svc.get("kind") == "web"
        for e in svc.get("port_hosts") or []
        if e.get("generated")
    }
