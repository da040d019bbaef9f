"""A compose service's ``ports:`` entries with a published port: routed through Berth's proxy, or published on
the server (pure).

A published TCP port whose container port gets a host (the service's routed port) is served by the proxy on
that host: the entry is listed in the notes as not carried, as before. Any other published port (TCP or UDP: a
game server, an SMTP relay, a DNS server, an MQTT broker) is published on the server's addresses when an
administrator allowed published ports for the team within a range of ports (``BERTH_PUBLISHED_PORTS_ALLOW``,
``BERTH_PUBLISHED_PORTS_ALLOW_TEAMS``; default: none); for any other team it is listed in the notes as not
carried, so a template whose side port (a git server's SSH, a broker's MQTT) the team may not publish still
deploys its web service, and says what it left out. A port outside the team's range is refused by name. A port
below 1024 is allowed only by a range that names it (the server's own services listen there), and the ports of
Berth's proxy (80, 443) never. Such a service runs one replica (``catalogue/published_ports.py``) and deploys
with ``strategy: recreate``: its old container stops before the new one binds the port.

For a team allowed published ports, a file without ``hosts`` publishes what it publishes, as ``docker compose
up`` does: its first service with an exposed (or unpublished) port gets the generated host, not one with
published ports only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from berth_api.domain.compose.keys import ComposeRefusal
from berth_api.domain.problems import invalid_field

Ranges = tuple[tuple[int, int], ...]
PROXY_PORTS = frozenset({80, 443})
ANY_ADDRESS = frozenset({"", "0.0.0.0", "::"})
RANGE_RE = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")
LOCAL = "local"
SETTINGS = "BERTH_PUBLISHED_PORTS_ALLOW_TEAMS: team id -> ranges; BERTH_PUBLISHED_PORTS_ALLOW: every team"


def parse_ranges(values: Iterable[str]) -> Ranges:
    """``["20000-20999", "25565"]`` as (low, high) pairs; raises ``ValueError`` naming a bad one."""
    out = []
    for value in values:
        found = RANGE_RE.match(str(value).strip())
        low, high = (int(found.group(1)), int(found.group(2) or found.group(1))) if found else (0, 0)
        if not found or not 1 <= low <= high <= 65535:
            raise ValueError(f"{value!r} is not a port range (low-high, or one port, within 1-65535)")
        out.append((low, high))
    return tuple(out)


def _text(ranges: Ranges) -> str:
    return ", ".join(f"{lo}-{hi}" if lo != hi else str(lo) for lo, hi in ranges)


def _within(port: int, ranges: Ranges) -> bool:
    return any(lo <= port <= hi for lo, hi in ranges)


def unpublished_ports(svc: Mapping[str, Any]) -> list[int]:
    """The container ports a service declares without publishing them (``expose``, ``ports`` without a
    published port): those a team allowed published ports gets a generated host for by default."""
    published = {int(p["target"]) for p in svc.get("ports") or [] if p.get("published") not in (None, "")}
    found = [int(p["target"]) for p in svc.get("ports") or [] if int(p["target"]) not in published]
    for exposed in svc.get("expose") or []:
        m = re.match(r"^(\d{1,5})(?:/tcp)?$", str(exposed))
        if m:
            found.append(int(m.group(1)))
    return list(dict.fromkeys(found))


def _port(spot: str, entry: Mapping[str, Any], ranges: Ranges) -> dict[str, Any]:
    """The entry as a published port, when the team may publish it."""
    given = str(entry["published"])
    if not given.isdigit() or not 1 <= int(given) <= 65535:
        raise ComposeRefusal(f"{spot}/published", f"one port of the server (1-65535), not {given!r}")
    port = int(given)
    if str(entry.get("host_ip") or "") not in ANY_ADDRESS:
        raise ComposeRefusal(
            f"{spot}/host_ip",
            f"Berth publishes a port on every address of the server: leave host_ip out, or 0.0.0.0 or ::, not "
            f"{entry['host_ip']}",
        )
    if port in PROXY_PORTS:
        raise ComposeRefusal(f"{spot}/published", f"the port {port} is Berth's proxy's on every server")
    if not _within(port, ranges):
        allowed = _text(ranges) or "none"
        low = (
            " Ports below 1024 are the server's own services' (SSH, SMTP, DNS): only a range that names them "
            "allows them."
            if port < 1024
            else ""
        )
        raise ComposeRefusal(
            f"{spot}/published",
            f"the port {port} is outside the ports the administrator allows this team to publish ({allowed}; "
            f"{SETTINGS}).{low}",
        )
    return {"target": int(entry["target"]), "published": port, "protocol": str(entry.get("protocol") or "tcp")}


def published_ports(
    name: str,
    svc: Mapping[str, Any],
    routed: Sequence[int],
    ranges: Ranges | None,
    notes: list[str],
) -> list[dict[str, Any]]:
    """The service's published ports (``target``, ``published``, ``protocol``); ``routed``: its container
    ports that get a host; ``ranges``: the ports the team may publish (None: not allowed). Raises
    ``ComposeRefusal`` naming the spot; a routed port's entry is noted as not carried."""
    out: list[dict[str, Any]] = []
    for i, entry in enumerate(svc.get("ports") or []):
        spot = f"services/{name}/ports/{i}"
        protocol = str(entry.get("protocol") or "tcp")
        if protocol not in ("tcp", "udp"):
            raise ComposeRefusal(f"{spot}/protocol", "tcp or udp")
        if entry.get("published") in (None, ""):
            if protocol != "tcp":  # as compose's random host port: nothing a client could be told to reach
                notes.append(
                    f"{spot}: not carried: a UDP port is reached only through a port published on the server "
                    "(Berth's proxy routes HTTP over TCP)"
                )
            continue
        if protocol == "tcp" and int(entry["target"]) in routed:
            notes.append(f"{spot}/published: not carried: Berth routes hosts through its proxy, no host port")
            continue
        if ranges is None:
            notes.append(
                f"{spot}/published: not carried: the team may not publish ports on the server (an administrator "
                f"allows a range: {SETTINGS}); the service is reached by the application's other services only"
            )
            continue
        out.append(_port(spot, entry, ranges))
    seen: dict[tuple[int, str], int] = {}
    for k, p in enumerate(out):
        first = seen.setdefault((p["published"], p["protocol"]), k)
        if first != k:
            raise ComposeRefusal(
                f"services/{name}/ports", f"the port {p['published']}/{p['protocol']} is published twice"
            )
    replicas = int((svc.get("deploy") or {}).get("replicas") or 1)
    if out and replicas != 1:
        raise ComposeRefusal(
            f"services/{name}/deploy/replicas",
            "a service publishing ports on the server runs 1 replica: two containers cannot bind one port",
        )
    return out


@dataclass(frozen=True)
class PortClaim:
    """A port an application publishes on a server, for ``service``; ``loc``: where the request gave it."""

    server_id: str
    port: int
    protocol: str
    service: str
    loc: str

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.server_id, self.port, self.protocol)


def port_claims(config: Mapping[str, Any]) -> list[PortClaim]:
    """The (server, port, protocol) a compose application's configuration publishes: each published port of
    a service on each server the service names (none: ``local``). Raises a 422 naming the field when two
    services of the application publish one port on one server."""
    translated = {s["name"]: s for s in (config.get("compose_translated") or {}).get("services") or []}
    out: list[PortClaim] = []
    seen: dict[tuple[str, int, str], str] = {}
    for svc in config.get("services") or []:
        found = translated.get(svc["name"]) or {}
        own = next((a for a in found.get("aliases") or [] if a != svc["name"]), svc["name"])
        loc = f"/body/compose/services/{own}/ports"
        for p in found.get("published_ports") or []:
            for server in svc.get("servers") or [LOCAL]:
                claim = PortClaim(server, int(p["published"]), str(p["protocol"]), svc["name"], loc)
                other = seen.setdefault(claim.key, svc["name"])
                if other != svc["name"]:
                    raise invalid_field(
                        loc, f"the port {claim.port}/{claim.protocol} is published by the service {other} too"
                    )
                out.append(claim)
    return out


def scale_refusal(config: Mapping[str, Any], replicas: Mapping[str, int]) -> tuple[str, str] | None:
    """(field, why) when scaling asks more than one replica of a compose service publishing ports."""
    translated = {s["name"]: s for s in (config.get("compose_translated") or {}).get("services") or []}
    for name, count in replicas.items():
        ports = (translated.get(name) or {}).get("published_ports") or []
        if count > 1 and ports:
            which = ", ".join(f"{p['published']}/{p['protocol']}" for p in ports)
            return f"/body/services/{name}", (
                f"the service {name} publishes ports on its server ({which}) and runs 1 replica: two containers "
                "cannot bind one port"
            )
    return None


def unpublished_for_preview(result: dict[str, Any]) -> None:
    """A pull request's preview publishes no port (changed in place): the ports are the application's own on
    the server, so each service's are dropped with a note; the preview runs the rest as the application does."""
    for svc in result["services"]:
        ports = svc.pop("published_ports", None)
        if ports:
            which = ", ".join(f"{p['published']}/{p['protocol']}" for p in ports)
            result["notes"].append(
                f"services/{svc['name']}/ports: not published in a preview: the server's ports {which} are the "
                "application's"
            )
