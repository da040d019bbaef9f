"""A compose service's ``shm_size``, ``ulimits`` and ``cap_drop``: limits on its own container that give it no
power over the server (``cap_add`` does, and is an administrator's; ``cap_drop`` only takes capabilities
away): pure. Databases and browsers need them (a bigger ``/dev/shm``, more open files), and many templates set
them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from berth_api.domain.compose.keys import ComposeRefusal

MAX_SHM_BYTES = 64 * 1024**3
MAX_ULIMIT = 2**31 - 1
ULIMIT_NAME = re.compile(r"^[a-z]{2,16}$")
CAPABILITY = re.compile(r"^(ALL|(CAP_)?[A-Z_]{2,32})$")


def host_limits(name: str, svc: Mapping[str, Any]) -> dict[str, Any]:
    """The service's container limits (empty when it sets none); raises ``ComposeRefusal`` naming the spot."""
    spot = f"services/{name}"
    out: dict[str, Any] = {}
    if svc.get("shm_size") not in (None, "", 0, "0"):
        try:
            size = int(svc["shm_size"])
        except (TypeError, ValueError):
            raise ComposeRefusal(f"{spot}/shm_size", "a size in bytes (compose's 64m, 1gb ...)") from None
        if not 0 < size <= MAX_SHM_BYTES:
            raise ComposeRefusal(f"{spot}/shm_size", f"between 1 byte and {MAX_SHM_BYTES // 1024**3} GiB")
        out["shm_size_bytes"] = size
    ulimits = []
    for key, value in sorted((svc.get("ulimits") or {}).items()):
        if not ULIMIT_NAME.match(str(key)):
            raise ComposeRefusal(f"{spot}/ulimits/{key}", "a ulimit's name (nofile, nproc, memlock ...)")
        # the parser leaves out a limit of 0 (``core: {soft: 0, hard: 0}`` is ``core: {}``)
        soft, hard = (value.get("soft", 0), value.get("hard", 0)) if isinstance(value, Mapping) else (value, value)
        for which, number in (("soft", soft), ("hard", hard)):
            if not isinstance(number, int) or not -1 <= number <= MAX_ULIMIT:
                raise ComposeRefusal(f"{spot}/ulimits/{key}", f"its {which} limit is a number (-1: unlimited)")
        ulimits.append({"name": str(key), "soft": soft, "hard": hard})
    if ulimits:
        out["ulimits"] = ulimits
    drops = [str(c) for c in svc.get("cap_drop") or []]
    for i, cap in enumerate(drops):
        if not CAPABILITY.match(cap):
            raise ComposeRefusal(f"{spot}/cap_drop/{i}", "a capability's name (ALL, NET_RAW ...)")
    if drops:
        out["cap_drop"] = drops
    return out
