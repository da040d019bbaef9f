"""The names a compose service is reached by on the application's private network: its compose name, its
networks' ``aliases`` and the aliases ``links`` give it: pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from berth_api.domain.compose.keys import ComposeRefusal, not_carried, present


def aliases(name: str, svc: Mapping[str, Any], slug: str) -> list[str]:
    """The names the compose service ``name`` (Berth's ``slug``) is reached by besides its slug: its compose
    name and its networks' ``aliases``; any other key of a service's network but ``ipv4_address``
    (``network_options``) is refused by name."""
    found = [name] if name != slug else []
    for net, attach in (svc.get("networks") or {}).items():
        for k, v in (attach or {}).items():
            if k == "aliases":
                found += [a for a in v if a not in found]
            elif present(v) and k != "ipv4_address":  # ``network_options.pinned_address``
                raise not_carried(f"services/{name}/networks/{net}/{k}")
    return found


def links(services: Mapping[str, Any], slugs: Mapping[str, str]) -> dict[str, list[str]]:
    """The aliases ``links`` give their services (``service:alias``), reached by every service of the
    application; a link without an alias, or under the service's own name, changes nothing. An alias that
    is another service's name is refused."""
    found: dict[str, list[str]] = {}
    for name, svc in services.items():
        for i, link in enumerate(svc.get("links") or []):
            target, _, alias = str(link).partition(":")
            alias = alias or target
            if target not in services:
                raise ComposeRefusal(f"services/{name}/links/{i}", f"the compose file has no service {target}")
            if alias in (target, slugs[target]):
                continue
            if alias in services or alias in slugs.values():
                raise ComposeRefusal(
                    f"services/{name}/links/{i}",
                    f"{alias} is another service's name on the application's network: link {target} under "
                    "another alias",
                )
            if alias not in found.setdefault(target, []):
                found[target].append(alias)
    return found
