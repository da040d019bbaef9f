"""The one writer of Traefik's dynamic directory: atomic writes and deletes of route files and the sentinel.

A file is written to a temporary name that does not end in ``.yml`` (Traefik ignores it), then renamed
into place, so Traefik never reads half a file. It is fsynced (file and directory) before the rename or,
for route changes (``durable=False`` then :meth:`DynamicDir.sync`), while Traefik already reads it, so the
disk flush is not on the path to the route being live. A delete renames the file away to such a name
first, then unlinks it. Names are validated and every path is checked to stay inside the dynamic
directory; the sentinel file is written only by :meth:`DynamicDir.write_sentinel` and never deleted.

Temporary files live in a staging directory next to the dynamic one (``.<name>.berth-staging``, same
filesystem, so the rename stays atomic), not in it: Traefik rebuilds its configuration on every event in
the directory it watches and throttles what follows, so a temporary file created there would open the
throttle window and hold the real change back. A change is then exactly one event in the watched
directory. When the staging directory cannot be made on the same filesystem (the dynamic directory is a
mount point), temporary files go into the dynamic directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path

from berth_proxy_sync.domain.routes import MANAGED_MARKER, SENTINEL_FILE

FILE_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?\.yml$")
TEMP_PREFIX = ".berth-"
STAGING_SUFFIX = ".berth-staging"


class UnsafePathError(ValueError):
    """A file name that is not a route file name, or a path outside the dynamic directory."""


class DynamicDir:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._staging: Path | None = None

    def ensure(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._staging = None

    @property
    def staging(self) -> Path:
        """Where temporary files are written (see the module's docstring); made on first use."""
        if self._staging is None:
            root = self.directory.resolve()
            candidate = root.parent / f".{root.name}{STAGING_SUFFIX}"
            try:
                candidate.mkdir(mode=0o700, exist_ok=True)
                same_fs = (
                    candidate.is_dir()
                    and not candidate.is_symlink()
                    and os.stat(candidate).st_dev == os.stat(root).st_dev
                )
            except OSError:
                same_fs = False
            self._staging = candidate if same_fs else root
        return self._staging

    def path(self, name: str) -> Path:
        if name == SENTINEL_FILE:
            raise UnsafePathError(f"not a route file name: {name!r}")
        return self._inside(name)

    def _inside(self, name: str) -> Path:
        if not FILE_NAME_RE.fullmatch(name):
            raise UnsafePathError(f"not a route file name: {name!r}")
        root = self.directory.resolve()
        path = (root / name).resolve()
        if path.parent != root:
            raise UnsafePathError(f"{name!r} resolves outside {root}")
        return path

    def _temp(self, name: str, kind: str) -> Path:
        return self.staging / f"{TEMP_PREFIX}{name}.{kind}-{secrets.token_hex(6)}"

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory.resolve(), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self, name: str) -> str | None:
        try:
            return self.path(name).read_text()
        except FileNotFoundError:
            return None

    def write(self, name: str, content: str, *, durable: bool = True) -> bool:
        """Atomically replace ``name`` with ``content``; False (and no write) when it already has it.

        ``durable=False`` renames the file into place without waiting for the disk (Traefik reads it from
        the page cache at once, whole); call :meth:`sync` before relying on it surviving a power loss.
        """
        return self._replace(self.path(name), content, durable=durable)

    def write_sentinel(self, content: str) -> bool:
        """Make the sentinel file hold ``content`` (durably); False when it already does."""
        return self._replace(self._inside(SENTINEL_FILE), content, durable=True)

    def _replace(self, target: Path, content: str, *, durable: bool) -> bool:
        try:
            if target.read_text() == content:
                return False
        except FileNotFoundError:
            pass
        tmp = self._temp(target.name, "tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(content)
                fh.flush()
                if durable:
                    os.fsync(fh.fileno())
            os.rename(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        if durable:
            self._fsync_dir()
        return True

    def sync(self, *names: str | None) -> None:
        """Flush each of ``names`` (those given and present) and the directory entry to disk."""
        for name in names:
            if name is None:
                continue
            try:
                fd = os.open(self.path(name), os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self._fsync_dir()

    def delete(self, name: str, *, durable: bool = True) -> bool:
        """Rename ``name`` away (one event for Traefik), then unlink it; False when it was not there.
        ``durable=False``: the directory is not flushed (see :meth:`sync`)."""
        target = self.path(name)
        away = self._temp(name, "deleted")
        try:
            os.rename(target, away)
        except FileNotFoundError:
            return False
        if durable:
            self._fsync_dir()
        away.unlink(missing_ok=True)
        return True

    def managed_files(self) -> list[str]:
        """Names of the route files this service wrote (they carry the marker line)."""
        names = []
        for entry in sorted(self.directory.iterdir()):
            if not FILE_NAME_RE.fullmatch(entry.name) or entry.name == SENTINEL_FILE or not entry.is_file():
                continue
            with contextlib.suppress(OSError), entry.open() as fh:
                if fh.readline() == MANAGED_MARKER:
                    names.append(entry.name)
        return names

    def clean_temp_files(self) -> int:
        """Remove temporary files a crash left behind (they never end in .yml, Traefik ignores them), in the
        staging directory and in the dynamic directory (where they go when there is no staging directory)."""
        removed = 0
        for folder in dict.fromkeys((self.directory.resolve(), self.staging)):
            for entry in folder.iterdir():
                if entry.name.startswith(TEMP_PREFIX) and entry.is_file() and not entry.name.endswith(".yml"):
                    entry.unlink(missing_ok=True)
                    removed += 1
        return removed
