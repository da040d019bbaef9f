"""Compose ``profiles``: a service with profiles is deployed only when ``docker compose up`` starts it: pure.

``docker compose up`` (what Coolify and Dokploy run) starts a service with ``profiles`` only when one of its
profiles is active (``--profile``, ``COMPOSE_PROFILES``). Berth asks the parser (``docker-compose config``) for
the application's active profiles (``active``): those of ``compose.profiles`` and those its non-secret
variable ``COMPOSE_PROFILES`` lists (comma-separated, as compose reads it), each once. The parser decides as
compose does: it leaves a service none of whose profiles is active out of the normalised model, and keeps one
with an active profile, or whose profiles include the empty one (Dify's ``profiles: ['', weaviate]``: started
by default), with its ``profiles``. A service left out is listed in the translation's notes by name with its
profiles (read from the file's text: the model no longer has it). A service that needs one left out
(``depends_on``, ``links``, ``volumes_from``) is refused by compose (``depends on undefined service``), and so
by Berth, naming the spot; a dependency with ``required: false`` on one is left out, as compose leaves it
out, and said in the notes; a host given to one is refused saying so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from berth_api.domain.compose.keys import ComposeRefusal
from berth_api.domain.compose.precheck import load

UNDEFINED_RE = re.compile(r'service "([^"]+)" depends on undefined service "([^"]+)"')
NEEDS = ("depends_on", "links", "volumes_from")  # the keys by which compose makes a service need another
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$")  # compose's profile names (at most 64 here)
VARIABLE = "COMPOSE_PROFILES"
HOW = "compose.profiles or the variable COMPOSE_PROFILES activates one"


def active(given: Sequence[str], variable: str | None) -> tuple[str, ...]:
    """The profiles the parser is asked to start: ``given`` (``compose.profiles``, checked by the request's
    schema), then those the variable ``COMPOSE_PROFILES`` lists (comma-separated; blanks ignored), each once.
    Raises ``ValueError`` naming a name of the variable that is not a profile name."""
    out = list(given)
    for part in (variable or "").split(","):
        name = part.strip()
        if not name:
            continue
        if not NAME_RE.match(name):
            raise ValueError(f"{name!r} is not a compose profile name ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 64)")
        out.append(name)
    return tuple(dict.fromkeys(out))


def declared(text: str) -> dict[str, list[str]]:
    """The profiles of each service of the file that has any, as its text gives them (before the parser)."""
    data = load(text)
    services = data.get("services") if isinstance(data, dict) else None
    found: dict[str, list[str]] = {}
    for name, svc in services.items() if isinstance(services, dict) else []:
        given = svc.get("profiles") if isinstance(svc, dict) else None
        if isinstance(given, list) and given:
            found[str(name)] = [str(p) for p in given]
    return found


def _listed(profiles: Sequence[str] | None) -> str:
    return "[" + ", ".join(repr(p) if p == "" else p for p in profiles or []) + "]"


def not_deployed(order: Iterable[str], services: Mapping[str, Any], profiles: Mapping[str, Sequence[str]]) -> list[str]:
    """The notes of the services of the file (``order``) the parser left out of the model (``services``):
    only a service with profiles none of which is active is."""
    return [
        f"services/{name}: not deployed: it has profiles {_listed(profiles.get(name))}, none of them active ({HOW})"
        for name in order
        if name not in services
    ]


def host_refusal(
    hosts: Iterable[Any], services: Mapping[str, Any], order: Sequence[str], profiles: Mapping[str, Sequence[str]]
) -> None:
    """Refuse a host given to a service of the file that is not deployed, saying why (its profiles)."""
    for i, h in enumerate(hosts):
        if h.service not in services and h.service in order:
            raise ComposeRefusal(
                f"hosts/{i}/service",
                f"{h.service} is not deployed: it has profiles {_listed(profiles.get(h.service))}, none of them "
                f"active ({HOW}); give the host to a service that is deployed",
            )


def optional_dependency(spot: str, dep: str) -> str:
    """The note of a ``required: false`` dependency on a service that is not deployed."""
    return (
        f"{spot}: not carried: {dep} is not deployed (it has profiles; compose starts it only when asked) and "
        "the dependency is not required, so compose leaves it out too"
    )


def _spot(svc: Any, name: str, dep: str) -> str:
    """Where the service ``name`` of the file's text names ``dep``: its depends_on, links or volumes_from."""
    for key in NEEDS:
        given = svc.get(key) if isinstance(svc, dict) else None
        entries = list(given) if isinstance(given, dict | list) else []
        if any(str(e).split(":", 1)[0] == dep for e in entries if not isinstance(e, dict)):
            return f"services/{name}/{key}" + (f"/{dep}" if key == "depends_on" else "")
    return f"services/{name}"


def dependency_refusal(message: str, text: str) -> ComposeRefusal | None:
    """The parser's refusal of a service that needs one with profiles (not started, so undefined for it) as
    a refusal naming the spot; None for any other message."""
    found = UNDEFINED_RE.search(message)
    if found is None:
        return None
    name, dep = found.groups()
    profiles = declared(text)
    if dep not in profiles:
        return None
    services = load(text).get("services") or {}
    return ComposeRefusal(
        _spot(services.get(name), name, dep),
        f"{name} needs {dep}, which is not deployed: it has profiles {_listed(profiles[dep])}, none of them "
        f"active (docker compose refuses this file too without one of them); activate one of them "
        f"(compose.profiles, COMPOSE_PROFILES), remove the profiles of {dep}, or {name}'s need of it",
    )
