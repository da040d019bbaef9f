"""Compose ``secrets`` (top-level, and a service's in short or long syntax) as Berth secret files: pure.

A secret's value is one of the application's variables (secret ones are sealed at rest and on the bus),
never a file: a top-level secret with ``environment: NAME`` is the variable ``NAME``, one with ``file:`` the
variable named as the secret itself (the file is not read: the parser is given none, and Berth reads no file
of its server). A service's secret is a read-only file at ``/run/secrets/<name>`` in its containers, or at
its ``target`` (a relative one under ``/run/secrets``), with its ``mode`` (compose's default ``0444``). The
translation holds only names (``secrets`` of the service: ``name``, ``variable``, ``target``, ``mode``);
the deployment's snapshot renders each value from the application's variables as the service's
``secret_files`` (sealed on the bus, masked wherever shown) and the scheduler puts them into the service's
read-only files volume, bound read-only at their targets.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from berth_api.domain import names
from berth_api.domain.compose.keys import ComposeRefusal, not_carried, present
from berth_common.catalogue import SECRETS_DIR, mount_path

DEFAULT_MODE = 0o444
SOURCES = ("file", "environment")


def top_level(model: Mapping[str, Any], notes: list[str]) -> dict[str, str]:
    """Each top-level secret's variable (secret name -> the application's variable holding its value)."""
    out: dict[str, str] = {}
    for key, entry in (model.get("secrets") or {}).items():
        spot = f"secrets/{key}"
        entry = entry or {}
        for k, v in entry.items():
            if k in SOURCES or (k == "name" and v == f"berth_{key}") or not present(v):
                continue
            if k == "external":
                raise not_carried(f"{spot}/external", "a secret of a Swarm outside Berth: give it as a variable")
            if k == "name":
                notes.append(f"{spot}/name: not carried: Berth names the secret's file by the secret")
                continue
            raise not_carried(f"{spot}/{k}")
        if present(entry.get("environment")):
            variable = str(entry["environment"])
        elif present(entry.get("file")):
            variable = str(key)
            notes.append(f"{spot}/file: not read: the value is the application's variable {variable}")
        else:
            raise ComposeRefusal(spot, "a secret's value is a variable of the application: environment: <NAME>")
        try:
            names.env_name(variable)
        except ValueError as exc:
            raise ComposeRefusal(spot, f"its value is the application's variable {variable!r}: {exc}") from None
        out[str(key)] = variable
    return out


def _mode(value: Any, spot: str) -> int:
    try:
        mode = int(value, 8) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise ComposeRefusal(spot, "a file mode in octal (0400, 0440 ...)") from None
    if not 0 <= mode <= 0o777:
        raise ComposeRefusal(spot, "a file mode in octal, at most 0777")
    return mode


def service_secrets(name: str, svc: Mapping[str, Any], defined: Mapping[str, str]) -> list[dict[str, Any]]:
    """The service's secret files: ``name``, ``variable``, ``target`` and ``mode`` (the parser writes the
    short syntax as the long one, one per target); raises ``ComposeRefusal`` naming the spot."""
    out: list[dict[str, Any]] = []
    for i, given in enumerate(svc.get("secrets") or []):
        spot = f"services/{name}/secrets/{i}"
        for k, v in given.items():
            if k in ("uid", "gid") and present(v):
                raise not_carried(f"{spot}/{k}", "Berth's secret files are root's: their mode says who reads them")
            if k not in ("source", "target", "mode", "uid", "gid") and present(v):
                raise not_carried(f"{spot}/{k}")
        source = str(given.get("source"))
        if source not in defined:
            raise ComposeRefusal(f"{spot}/source", f"the compose file defines no secret {source} (top-level secrets)")
        target = str(given.get("target") or source)
        target = target if target.startswith("/") else posixpath.join(SECRETS_DIR, target)
        try:
            mount_path(target)
        except ValueError as exc:
            raise ComposeRefusal(f"{spot}/target", str(exc)) from None
        mode = _mode(given["mode"], f"{spot}/mode") if present(given.get("mode")) else DEFAULT_MODE
        out.append({"name": source, "variable": defined[source], "target": target, "mode": mode})
    return out
