"""A Dokploy blueprint's bind of a directory under its files that no ``[[config.mounts]]`` file is in: pure.

Dokploy runs the compose from ``/etc/dokploy/compose/<app>/code/`` and writes the mounts' files under
``../files/``; a bind of ``../files/<dir>`` (or ``./files/<dir>``) with no file in it is a directory Docker
creates empty on the server the first time and keeps across deploys: the data of a database, a config
directory the app fills itself. Berth keeps such data in a volume of the application, so the bind becomes a
named volume (``files-<dir>``), listed in the import's notes; a bind of a given file stays one of
``compose.files``. A bind of another relative path (``./postgres_data``, beside the compose file, where
Dokploy writes nothing else) is such a directory too: a volume named after it.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

PREFIX = "./files/"
SHORT = re.compile(r"^(\.\.?/[^:]*?|\$\{[A-Za-z_]\w*:?-\.\.?/[^}:]*\})/?(:.*)?$")
# ``${VOLUME_US:-./metadata}`` (datalens): a compose variable no one gives, so its default
DEFAULTED = re.compile(r"^\$\{[A-Za-z_]\w*:?-(\.\.?/[^}:]*?)/?\}$")
MAX_NAME = 32


def volume_name(path: str, taken: Collection[str], prefix: str = "files-") -> str:
    """``files-<path>`` (``prefix``) as a volume name Berth can use (a slug of at most 32), not one of ``taken``."""
    base = prefix + re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")
    name = base[:MAX_NAME].rstrip("-") or "data"
    n = 1
    while name in taken:
        n += 1
        name = f"{base[: MAX_NAME - len(str(n)) - 1].rstrip('-')}-{n}"
    return name


def _given(path: str, files: Collection[str]) -> bool:
    return any(f == path or f.startswith(path + "/") for f in files)


def _note(svc: str, i: int, source: str, name: str) -> str:
    if source.startswith(PREFIX):
        return (
            f"services.{svc}.volumes[{i}]: ../files/{source[len(PREFIX) :]} has no file of config.mounts in it: "
            f"Docker creates it empty on the server and Dokploy keeps it across deploys; carried as the "
            f"application's volume {name}"
        )
    return (
        f"services.{svc}.volumes[{i}]: {source} is a directory beside the compose file, which Dokploy writes "
        f"alone: Docker creates it empty on the server; carried as the application's volume {name}"
    )


def empty_dirs(doc: dict[str, Any], files: Collection[str], notes: list[str]) -> bool:
    """Change ``doc`` (the compose, ``../files/`` already ``./files/``) in place: each bind of a directory
    under the files that holds none of ``files`` (the mounts' paths), or of another relative path (beside
    the compose file, where Dokploy writes nothing else), is a named volume, declared at the top level; the
    same directory in two services is one volume. Whether anything changed."""
    made: dict[str, str] = {}  # relative source -> volume name
    given = doc.get("volumes")
    top: dict[str, Any] = given if isinstance(given, dict) else {}
    for svc_name, svc in (doc.get("services") or {}).items():
        found = svc.get("volumes") if isinstance(svc, dict) else None
        mounts: list[Any] = found if isinstance(found, list) else []
        for i, mount in enumerate(mounts):
            short = SHORT.match(mount) if isinstance(mount, str) else None
            if isinstance(mount, dict) and str(mount.get("source") or "").startswith(("./", "../")):
                source = str(mount["source"]).rstrip("/")
            elif short:
                source = short.group(1)
            else:
                continue
            defaulted = DEFAULTED.match(source)
            if defaulted:
                notes.append(f"services.{svc_name}.volumes[{i}]: {source} is its default {defaulted.group(1)}")
                source = defaulted.group(1)
            files_path = source[len(PREFIX) :] if source.startswith(PREFIX) else None
            path = files_path if files_path is not None else re.sub(r"^(\.\.?/)+", "", source)
            if path in ("", ".", "..") or "${" in source or (files_path is not None and _given(path, files)):
                continue
            if source not in made:
                prefix = "files-" if files_path is not None else ""
                made[source] = volume_name(path, {*top, *made.values()}, prefix)
                notes.append(_note(svc_name, i, source, made[source]))
            if short:
                mounts[i] = made[source] + (short.group(2) or "")
            else:
                mount.update({"type": "volume", "source": made[source]})
                mount.pop("bind", None)
    if not made:
        return False
    doc["volumes"] = {**top, **dict.fromkeys(made.values())}
    return True
