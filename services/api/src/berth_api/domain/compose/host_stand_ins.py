"""Host files a compose file binds into a container that has its own: pure. ``/etc/localtime`` and
``/etc/timezone`` at their own paths (the server's time zone: Coolify's immich, stalwart, elasticsearch;
Dokploy's forgejo, glpi) and ``/dev/urandom`` at its own path (Docker gives every container the kernel's
own) or at ``/dev/random`` (metabase's; on Linux 5.6 and later /dev/random never blocks either). For a team
the administrator did not allow the path, the mount is left out and listed in the notes: nothing of the
server is mounted, and the container keeps its own file. Any other host path, or one of these at another
path, is refused as any bind mount outside the allow-list.
"""

from __future__ import annotations

from typing import Any

ZONE = "the container keeps its image's time zone (UTC in most; many images read the variable TZ)"
URANDOM = "the container has its own, the same kernel device"
# the server's path -> {the container path it may be bound at: why the container does without it}
STAND_INS = {
    "/etc/localtime": {"/etc/localtime": ZONE},
    "/etc/timezone": {"/etc/timezone": ZONE},
    "/dev/urandom": {
        "/dev/urandom": URANDOM,
        # metabase's: a Java that reads /dev/random never waits for entropy (Linux 5.6 and later: it does not)
        "/dev/random": "the container has its own /dev/random, which on Linux 5.6 and later never blocks, as "
        "/dev/urandom",
    },
}


def left_out(spot: str, source: Any, target: Any, notes: list[str]) -> bool:
    """Whether the bind mount of ``source`` at ``target`` is one the container does without (then noted)."""
    why = STAND_INS.get(str(source).rstrip("/"), {}).get(str(target).rstrip("/"))
    if why is None:
        return False
    notes.append(f"{spot}: not carried: {source} of the server is not mounted; {why}")
    return True
