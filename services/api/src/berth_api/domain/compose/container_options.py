"""A compose service's ``extra_hosts``, ``dns``, ``tmpfs``, ``group_add``, ``sysctls``, ``stop_signal`` and
``pids_limit``: settings of its own container that give it no power over the server (part of its
``host_limits``): pure.

- ``extra_hosts``: lines of its ``/etc/hosts``; ``host-gateway`` is the address of the server's Docker
  bridge, which the container reaches anyway (it is its default route).
- ``dns``: its resolvers; ``tmpfs``: in-memory directories, counted in its memory.
- ``group_add``: supplementary groups of its user inside the container (the files they open are those it
  mounts, which the mount rules decide).
- ``sysctls``: ``net.*`` only, which set the container's own network stack; any other would set the
  server's kernel or is refused by Docker, and is refused by name.
- ``stop_signal``: the signal that stops it (before SIGKILL after the grace period).
- ``pids_limit``: how many processes it may run (a limit on itself).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from berth_api.domain.compose.keys import ComposeRefusal

HOSTNAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})$")
TMPFS_OPTIONS = re.compile(r"^[A-Za-z0-9=,_.-]{0,256}$")
GROUP = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
SYSCTL = re.compile(r"^net\.[A-Za-z0-9_./-]{1,128}$")
SIGNAL = re.compile(r"^(?:SIG[A-Z0-9+-]{2,12}|[A-Z][A-Z0-9+-]{1,12}|[0-9]{1,2})$")


def _address(value: str, spot: str, gateway: bool = False) -> str:
    if gateway and value == "host-gateway":
        return value
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ComposeRefusal(spot, f"{value!r} is not an IP address") from None


def _extra_hosts(spot: str, given: Any) -> list[str]:
    items = [f"{k}={v}" for k, v in given.items()] if isinstance(given, Mapping) else list(given or [])
    out = []
    for i, item in enumerate(items):
        name, sep, address = str(item).partition("=")
        if not sep:
            name, _, address = str(item).partition(":")
        if not HOSTNAME.match(name):
            raise ComposeRefusal(f"{spot}/extra_hosts/{i}", f"{name!r} is not a host name")
        out.append(f"{name}:{_address(address, f'{spot}/extra_hosts/{i}', gateway=True)}")
    return out


def _tmpfs(spot: str, given: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, item in enumerate([given] if isinstance(given, str) else given or []):
        path, _, options = str(item).partition(":")
        if not path.startswith("/") or ".." in path.split("/") or not TMPFS_OPTIONS.match(options):
            where = "/".join((spot, "tmpfs", str(i)))  # a spot in the compose model, not a file
            raise ComposeRefusal(where, "an absolute path, then :options (size=64m,mode=1777)")
        out[path] = options
    return out


def container_options(name: str, svc: Mapping[str, Any]) -> dict[str, Any]:
    """The service's settings above (empty when it sets none); raises ``ComposeRefusal`` naming the spot."""
    spot = f"services/{name}"
    out: dict[str, Any] = {}
    if svc.get("extra_hosts"):
        out["extra_hosts"] = _extra_hosts(spot, svc["extra_hosts"])
    if svc.get("dns"):
        dns = [svc["dns"]] if isinstance(svc["dns"], str) else svc["dns"]
        out["dns"] = [_address(str(a), f"{spot}/dns/{i}") for i, a in enumerate(dns)]
    if svc.get("tmpfs"):
        out["tmpfs"] = _tmpfs(spot, svc["tmpfs"])
    groups = [str(g) for g in svc.get("group_add") or []]
    for i, group in enumerate(groups):
        if not GROUP.match(group):
            raise ComposeRefusal(f"{spot}/group_add/{i}", "a group's name or number")
    if groups:
        out["group_add"] = groups
    sysctls = svc.get("sysctls") or {}
    if not isinstance(sysctls, Mapping):
        sysctls = dict(str(s).partition("=")[::2] for s in sysctls)
    for key in sysctls:
        if not SYSCTL.match(str(key)):
            raise ComposeRefusal(
                f"{spot}/sysctls/{key}",
                "refused: Berth carries net.* sysctls only, which set the container's own network stack; "
                "another would set the server's kernel for every container (or Docker refuses it)",
            )
    if sysctls:
        out["sysctls"] = {str(k): str(v) for k, v in sysctls.items()}
    if svc.get("pids_limit") is not None:
        limit = svc["pids_limit"]
        if not isinstance(limit, int) or isinstance(limit, bool) or not -1 <= limit <= 2**31 - 1:
            raise ComposeRefusal(f"{spot}/pids_limit", "a number of processes (-1: no limit)")
        out["pids_limit"] = limit
    if svc.get("stop_signal"):
        signal = str(svc["stop_signal"])
        if not SIGNAL.match(signal):
            raise ComposeRefusal(f"{spot}/stop_signal", "a signal's name (SIGINT, SIGQUIT ...) or number")
        out["stop_signal"] = signal
    return out
