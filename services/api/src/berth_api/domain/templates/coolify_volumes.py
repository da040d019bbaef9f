"""The volumes of an imported Coolify template: Coolify makes a directory of a service's own folder on the
host for a relative bind and declares every named volume itself; in Berth (no host path without an
administrator's allow-list) such a directory is a named volume, and the named volumes are declared at the
top level, as compose requires."""

from __future__ import annotations

import re
from typing import Any

from berth_api.domain.templates.format import file_mode
from berth_api.domain.templates.model import TemplateFile


def relative(source: Any) -> bool:
    """A directory of the service's own folder on Coolify's host: ``./x``, ``../x``, and ``~/x`` too (Coolify's
    replaceLocalSource puts the service's folder for a leading ``~``, not a home directory; booklore)."""
    if not isinstance(source, str) or source.startswith("./files/"):
        return False
    return source.startswith(".") or source == "~" or source.startswith("~/")


def volume_name(source: str) -> str:
    """A relative directory as a volume name: ``./data/html`` -> ``data-html``."""
    return re.sub(r"[^a-z0-9]+", "-", source.lower()).strip("-") or "data"


_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")


def relative_as_volume(volume: Any, where: str, notes: list[str]) -> Any:
    """``./html:/usr/share/nginx/html``: Coolify makes a directory of the service's own folder on the host;
    in Berth (no host path without an administrator's allow-list) it is a named volume, kept across
    deployments like that folder. A source that is neither a path nor a volume's name (mautic5's
    ``mautic_data/config``, memos' ``memos/``, denoKV's ``${COOLIFY_VOLUME_APP}``, a variable Coolify never
    sets) is a named volume in Coolify, named by its slug before any interpolation (sourceIsLocal and
    ``Str::slug`` in bootstrap/helpers/parsers.php): so it is here, where compose would refuse it."""
    if not isinstance(volume, str) or ":" not in volume:
        return volume
    source, rest = volume.split(":", 1)
    if relative(source):
        why = f"the directory {source} is"
    elif source and source[0] not in "/~" and ("/" in source or _REFERENCE.match(source)):
        why = f"{source} is, as Coolify reads it,"
    else:
        return volume
    named = volume_name(source)
    notes.append(f"{where}: {why} the named volume {named}")
    return f"{named}:{_without_relabel(rest, where, notes)}"


def _without_relabel(rest: str, where: str, notes: list[str]) -> str:
    """``target[:options]`` without ``z`` / ``Z``: SELinux relabelling of the host directory a named volume no
    longer is (compose reads it as ``bind.selinux``, which a volume mount does not take)."""
    target, sep, options = rest.partition(":")
    kept = [o for o in options.split(",") if o not in ("z", "Z")] if sep else []
    if sep and len(kept) < len(options.split(",")):
        notes.append(f"{where}: the SELinux relabel option ({options}) dropped: a named volume needs none")
    return target + (":" + ",".join(kept) if kept else "")


def carry_mount(volume: dict[str, Any], svc: str, i: int, loc: str, notes: list[str]) -> TemplateFile | None:
    """A long-form mount of a Coolify template, in place: its ``content`` is a template file (``mode``, not a
    compose key, is that file's permission bits; Coolify drops it from the mount), Coolify's ``is_directory``
    is dropped, and a relative bind is a named volume. Returns the mount's template file, if it has one."""
    where = f"services.{svc}.volumes[{i}]"
    content = volume.pop("content", None)
    mode = volume.pop("mode", None)
    for key in ("is_directory", "isDirectory"):
        if volume.pop(key, None) is not None:
            notes.append(f"{where}.{key}: dropped; a bind without content is a directory")
    if mode is not None and content is None:
        notes.append(f"{where}.mode: dropped; only a file of the template has a mode")
    if content is not None:
        path = str(volume.get("source", f"{svc}-{i}")).removeprefix("./").lstrip("/")
        bits = None if mode is None else file_mode(mode, f"{loc}/mode")
        volume["source"] = f"./files/{path}"
        notes.append(f"{where}.content: carried as the template file files/{path}")
        if bits is not None:
            notes.append(f"{where}.mode: the mode {bits:04o} of the template file files/{path}")
        return TemplateFile(path, str(content), bits)
    if volume.get("type", "bind") == "bind" and relative(volume.get("source")):
        named = volume_name(str(volume["source"]))
        notes.append(f"{where}: the directory {volume['source']} is the named volume {named}")
        volume.update({"type": "volume", "source": named})
    return None


def _slug(name: str) -> str:
    return re.sub(r"[_.]", "-", name.lower())


def merge_slug_twins(doc: dict[str, Any], notes: list[str]) -> None:
    """Named volumes whose names differ only by ``_`` / ``-`` (hatchet's ``hatchet_certs`` written by its setup
    service, ``hatchet-certs`` read by the others) are one volume in Coolify, which names a volume by its
    slug (``Str::slug``); so they are here, under the dashed name (compose would make two, and Berth, whose
    names are the same slugs, refuses two). Renames the mounts and the top-level declarations in place."""
    names: list[str] = [str(n) for n in (doc.get("volumes") or {}) if isinstance(doc.get("volumes"), dict)]
    for spec in doc["services"].values():
        names += [n for v in spec.get("volumes") or [] if (n := named_volume(v))]
    groups: dict[str, set[str]] = {}
    for name in names:
        groups.setdefault(_slug(name), set()).add(name)
    renamed = {n: slug for slug, twins in groups.items() if len(twins) > 1 for n in twins if n != slug}
    if not renamed:
        return
    for spec in doc["services"].values():
        for i, volume in enumerate(spec.get("volumes") or []):
            mounted = named_volume(volume)
            if mounted is None or mounted not in renamed:
                continue
            if isinstance(volume, dict):
                volume["source"] = renamed[mounted]
            else:
                spec["volumes"][i] = renamed[mounted] + volume[len(mounted) :]
    top = doc.get("volumes")
    if isinstance(top, dict):
        merged: dict[str, Any] = {}
        for declared, decl in top.items():
            key = renamed.get(str(declared), str(declared))
            merged[key] = merged.get(key) or decl
        doc["volumes"] = merged
    for slug in sorted({*renamed.values()}):
        twins = " and ".join(sorted(groups[slug], key=lambda n: (n == slug, n)))
        notes.append(f"volumes: {twins} are one volume {slug}, as Coolify names volumes")


def declare_volumes(doc: dict[str, Any], notes: list[str]) -> None:
    """Declare at the top level each named volume a service mounts but the file does not declare: Coolify
    declares them itself (its templates rarely do), while compose refuses a service that refers to an
    undeclared volume."""
    top = doc.get("volumes")
    declared: dict[str, Any] = top if isinstance(top, dict) else {}
    missing: list[str] = []
    for spec in doc["services"].values():
        for volume in spec.get("volumes") or []:
            name = named_volume(volume)
            if name and name not in declared and name not in missing:
                missing.append(name)
    if missing:
        doc["volumes"] = {**declared, **{name: None for name in missing}}
        notes.append("volumes: " + ", ".join(missing) + " declared at the top level, as Coolify does")


def named_volume(volume: Any) -> str | None:
    """The named volume a mount uses (``name:/path``, or the long form's ``type: volume``), else None."""
    if isinstance(volume, dict):
        source = volume.get("source")
        return str(source) if volume.get("type", "volume") == "volume" and source else None
    if not isinstance(volume, str) or ":" not in volume:
        return None
    source = volume.split(":", 1)[0]
    return None if not source or source[0] in "./~$" or "/" in source else source
