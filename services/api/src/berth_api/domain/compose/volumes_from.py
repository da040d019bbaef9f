"""Compose ``volumes_from``: a service mounts the mounts of another service at the same paths: pure.

``volumes_from: [other]`` (Coolify's espocrm-daemon and espocrm-websocket) gives the service's containers
every volume of ``other``'s, at the same paths. Berth carries it at translation time: the other service's
named-volume mounts and host bind mounts (the application's files of ``compose.files`` among them) are
copied into this service's ``volumes`` as if the file gave them there, so each is checked, counted among the
services mounting the volume (a volume two services mount is not single-writer) and mounted as any other;
``other:ro`` mounts them read-only, ``other:rw`` writable, no mode as ``other`` mounts them (Docker's rule).
A mount of the service's own at the same path wins, as in Docker. What is not carried, said in the notes:
the volumes ``other``'s image declares itself (Dockerfile ``VOLUME``: each container gets its own) and its
secrets. ``container:<name>`` names a container Berth does not run: refused by name; so is a path that two
services of ``volumes_from`` both give.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from berth_api.domain.compose.keys import ComposeRefusal

MODES = ("", "ro", "rw")
COPIED = ("volume", "bind")  # Docker copies mount points; tmpfs and secrets are not volumes of the container


def _entry(spot: str, entry: Any, services: Mapping[str, Any]) -> tuple[str, str]:
    """(the other service, the mode) of one ``volumes_from`` entry."""
    text = str(entry)
    if text.startswith("container:"):
        raise ComposeRefusal(
            spot, "volumes_from a container is not carried: Berth runs only the file's services; name a service"
        )
    other, _, mode = text.partition(":")
    if mode not in MODES:
        raise ComposeRefusal(spot, f"the mode of volumes_from is ro or rw, not {mode}")
    if other not in services:
        raise ComposeRefusal(spot, f"the compose file has no service {other}")
    return other, mode


def _moded(mount: Mapping[str, Any], mode: str) -> dict[str, Any]:
    out = dict(mount)
    if mode == "ro":
        out["read_only"] = True
    elif mode == "rw":
        out.pop("read_only", None)
    return out


def expand(services: Mapping[str, Any], notes: list[str]) -> dict[str, Any]:
    """The services with each ``volumes_from`` replaced by the mounts it gives (raises ``ComposeRefusal``)."""
    done: dict[str, Any] = {}

    def resolved(name: str, seen: tuple[str, ...]) -> Any:
        if name in done:
            return done[name]
        svc = services[name]
        entries = svc.get("volumes_from") or []
        if not entries:
            done[name] = svc
            return svc
        if name in seen:
            raise ComposeRefusal(f"services/{name}/volumes_from", f"volumes_from has a cycle: {' -> '.join(seen)}")
        own = list(svc.get("volumes") or [])
        given: dict[Any, str] = {m.get("target"): name for m in own}
        sources: list[str] = []
        for i, entry in enumerate(entries):
            spot = f"services/{name}/volumes_from/{i}"
            other, mode = _entry(spot, entry, services)
            for mount in resolved(other, (*seen, name)).get("volumes") or []:
                target = mount.get("target")
                if mount.get("type") not in COPIED or given.get(target) in (name, other):
                    continue  # the service's own mount at that path wins (or ``other`` named twice)
                if target in given:
                    raise ComposeRefusal(spot, f"{other} and {given[target]} both mount {target}: give one of them")
                given[target] = other
                own.append(_moded(mount, mode))
            sources.append(other)
        notes.append(
            f"services/{name}/volumes_from: carried as the named volumes, host bind mounts and files of "
            f"{', '.join(dict.fromkeys(sources))} at the same paths; not the volumes its image declares itself "
            "(VOLUME: each container has its own) nor its secrets"
        )
        done[name] = {**{k: v for k, v in svc.items() if k != "volumes_from"}, "volumes": own}
        return done[name]

    return {name: resolved(name, ()) for name in services}
