"""The build context: a tar of the checked-out subdirectory, written to the workspace.

Never follows a symlink: the subdirectory and the Dockerfile are reached component by component with
``lstat`` (a symlinked component is refused), files are opened with ``O_NOFOLLOW``, and symlinks inside
the tree are stored as links only when their target stays inside the context (others are left out and
reported). Special files are skipped. ``.dockerignore`` is honoured (see ``domain.dockerignore``).
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from berth_builder.domain.detect import MAX_PROBE_BYTES, PROBED_FILES, Probe
from berth_builder.domain.dockerignore import Matcher

CHUNK = 256 * 1024


class ContextError(ValueError):
    """The checkout cannot be turned into a build context; the message is for a person."""


class NotFound(ContextError):
    """A path of the checkout that is not there (or is not a directory where one is needed)."""


class ThroughSymlink(ContextError):
    """A file asked for whose directory is reached through a symlink."""


@dataclass
class ContextInfo:
    path: Path
    files: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)


def safe_dir(root: Path, rel: str) -> Path:
    """``root/rel`` where no component is a symlink and the result is a directory."""
    current = root
    for part in [p for p in rel.split("/") if p]:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            raise NotFound(f"the subdirectory {rel!r} does not exist in the repository") from None
        if stat.S_ISLNK(st.st_mode):
            raise ContextError(f"the subdirectory {rel!r} goes through a symlink ({part!r}): not allowed")
        if not stat.S_ISDIR(st.st_mode):
            raise NotFound(f"{rel!r} is not a directory in the repository")
    return current


def read_bytes(root: Path, rel: str, limit: int) -> bytes:
    """The bytes of the regular file ``root/rel``, at most ``limit``: ``NotFound`` when there is none,
    ``ThroughSymlink`` when its directory is reached through a symlink, a ``ContextError`` when it is a
    symlink itself, is not a regular file, or is larger than ``limit``."""
    parent, _, name = rel.rpartition("/")
    try:
        directory = safe_dir(root, parent)
    except NotFound:
        raise NotFound(f"there is no file {rel!r} in the repository") from None
    except ContextError:
        raise ThroughSymlink(f"{rel!r} goes through a symlink: not allowed") from None
    try:
        fd = os.open(directory / name, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise NotFound(f"there is no file {rel!r} in the repository") from None
    except OSError as exc:  # ELOOP: a symlink
        raise ContextError(f"{rel!r} is a symlink or unreadable ({exc.strerror}): not allowed") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # before fdopen, which refuses a directory on its own
        os.close(fd)
        raise ContextError(f"{rel!r} is not a regular file")
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ContextError(f"{rel!r} is larger than {limit} bytes")
    return data


def read_file(root: Path, rel: str, limit: int) -> str | None:
    """Text of the regular file ``root/rel`` (no symlink anywhere on the way); None if it does not exist."""
    try:
        return read_bytes(root, rel, limit).decode("utf-8", errors="replace")
    except (NotFound, ThroughSymlink):
        return None


def probe(context: Path) -> Probe:
    names = frozenset(os.listdir(context))
    texts = {}
    for name in PROBED_FILES:
        if name in names:
            try:
                text = read_file(context, name, MAX_PROBE_BYTES)
            except ContextError:
                text = None
            if text is not None:
                texts[name] = text
    return Probe(names=names, texts=texts)


def _symlink_target_inside(rel: str, target: str) -> bool:
    if not target or target.startswith("/"):
        return False
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    return not (joined == ".." or joined.startswith("../"))


def _walk(root: Path, rel: str, matcher: Matcher) -> Iterator[tuple[str, os.DirEntry[str]]]:
    with os.scandir(root / rel if rel else root) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        path = f"{rel}/{entry.name}" if rel else entry.name
        if entry.is_dir(follow_symlinks=False):
            if matcher.prune(path):
                continue
            yield path, entry
            yield from _walk(root, path, matcher)
        else:
            yield path, entry


def make_context(
    context: Path,
    out: Path,
    *,
    dockerfile_path: str,
    dockerfile_text: str,
    max_bytes: int,
    extra_files: dict[str, str] | None = None,
) -> ContextInfo:
    """Write the tar of ``context`` to ``out``, with ``dockerfile_path`` holding ``dockerfile_text``
    (the repository's Dockerfile after the image map, or a generated one) and ``extra_files`` added."""
    ignore_text = read_file(context, ".dockerignore", 1024 * 1024) or ""
    matcher = Matcher(ignore_text)
    replaced = {dockerfile_path: dockerfile_text, **(extra_files or {})}
    info = ContextInfo(path=out)
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:

        def add_bytes(name: str, data: bytes, mode: int = 0o644) -> None:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), mode, 0
            tar.addfile(ti, io.BytesIO(data))
            info.files += 1
            info.bytes += len(data)

        added_dirs: set[str] = set()
        for path, entry in _walk(context, "", matcher):
            if path in replaced:
                continue
            is_dir = entry.is_dir(follow_symlinks=False)
            if matcher.excluded(path) and not is_dir:
                continue
            st = entry.stat(follow_symlinks=False)
            ti = tarfile.TarInfo(path)
            ti.mtime, ti.uid, ti.gid, ti.mode = 0, 0, 0, stat.S_IMODE(st.st_mode)
            if is_dir:
                if matcher.excluded(path):
                    continue  # walked only for exceptions below it; parents are added on demand
                ti.type = tarfile.DIRTYPE
                tar.addfile(ti)
                added_dirs.add(path)
            elif stat.S_ISLNK(st.st_mode):
                target = os.readlink(context / path)
                if not _symlink_target_inside(path, target):
                    info.skipped.append(f"{path} -> {target} (points outside the build context)")
                    continue
                ti.type, ti.linkname = tarfile.SYMTYPE, target
                tar.addfile(ti)
            elif stat.S_ISREG(st.st_mode):
                _add_parents(tar, path, added_dirs)
                info.bytes += st.st_size
                if info.bytes > max_bytes:
                    raise ContextError(
                        f"the build context is larger than {max_bytes // (1024 * 1024)} MB: "
                        "exclude files with a .dockerignore or raise BERTH_MAX_CONTEXT_MB"
                    )
                fd = os.open(context / path, os.O_RDONLY | os.O_NOFOLLOW)
                with os.fdopen(fd, "rb") as fh:
                    fst = os.fstat(fh.fileno())
                    if not stat.S_ISREG(fst.st_mode):
                        continue
                    ti.size = fst.st_size
                    tar.addfile(ti, fh)
                info.files += 1
            else:
                info.skipped.append(f"{path} (not a regular file, directory or symlink)")
        for name, text in sorted(replaced.items()):
            _add_parents(tar, name, added_dirs)
            add_bytes(name, text.encode())
    return info


def _add_parents(tar: tarfile.TarFile, path: str, added: set[str]) -> None:
    parts = path.split("/")[:-1]
    for i in range(len(parts)):
        d = "/".join(parts[: i + 1])
        if d not in added:
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(ti)
            added.add(d)


def iter_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk
