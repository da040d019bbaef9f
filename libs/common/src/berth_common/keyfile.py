"""Key files: secrets kept on disk readable by their owner only (mode 0600), and the keyring they hold.

A key file holds 32 random bytes as hex, created at a service's first start (:func:`read_or_create_key`).
Key rotation writes a new one and leaves the old one as a dated backup (``<name>.<UTC time>.bak``) that
still opens what it sealed; :class:`KeyFile` reads both and re-reads them when the key file is replaced.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from berth_common.logging import get_logger
from berth_common.sealing import Keyring, Purpose

log = get_logger(__name__)

MIN_KEY_BYTES = 32


def write_private_file(path: Path, content: str) -> None:
    """Create ``path`` with mode 0600 via a temp file (created 0600, O_EXCL) renamed into place.

    Readers see either no file or the whole content; at no time does a file with wider permissions exist.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # the umask can only narrow 0600; make it exact anyway
            data = content.encode()
            while data:
                written = os.write(fd, data)
                data = data[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_or_create_key(path: Path, min_bytes: int = MIN_KEY_BYTES) -> bytes:
    """The key file's content; a missing file is created with 32 random bytes (hex), mode 0600.

    Creation writes a private temp file and links it into place, which fails if another process created
    the key meanwhile: then that key is used. An existing key is never overwritten. A file readable by
    others is used, with a warning; one holding fewer than ``min_bytes`` bytes is refused.
    """
    try:
        data = path.read_bytes().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(secrets.token_hex(32).encode() + b"\n")
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        log.info("secret key created", path=str(path))
        data = path.read_bytes().strip()
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("secret key file is readable by others: chmod 600 it", path=str(path), mode=oct(mode))
    if len(data) < min_bytes:
        raise ValueError(f"the secret key file {path} holds fewer than {min_bytes} bytes")
    return data


def backup_paths(path: Path) -> list[Path]:
    """Dated backups of the key file that key rotation leaves (``<name>.<UTC time>.bak``), newest first."""
    return sorted(path.parent.glob(f"{path.name}.*.bak"), reverse=True)


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class KeyFile:
    """The keyring of a key file (seals and opens), its dated backups and older key files (open only).

    :meth:`refresh` re-reads them when the key file was replaced (key rotation renames a new one into
    place); :meth:`reload_quietly` re-reads them unconditionally (a value sealed with a key id this process
    does not know yet). So a running service keeps opening values while and after they are re-sealed.
    """

    def __init__(
        self, path: Path, previous: list[Path] | None = None, *, purpose: Purpose, min_bytes: int = MIN_KEY_BYTES
    ) -> None:
        self.path = path
        self.previous = list(previous or [])
        self.purpose = purpose
        self.min_bytes = min_bytes
        self._seen: tuple[int, int, int] | None = None
        self.keyring = self._read(create=True)

    def __repr__(self) -> str:
        return f"KeyFile(path={str(self.path)!r}, keys={len(self.keyring.keys)})"

    def _read(self, *, create: bool = False) -> Keyring:
        if create:
            current = read_or_create_key(self.path, self.min_bytes)
        else:
            current = self.path.read_bytes().strip()
            if len(current) < self.min_bytes:
                raise ValueError(f"the secret key file {self.path} holds fewer than {self.min_bytes} bytes")
        others = [p.read_bytes().strip() for p in [*backup_paths(self.path), *self.previous] if p.exists()]
        ring = Keyring.from_materials([current, *(m for m in others if len(m) >= self.min_bytes)], self.purpose)
        self._seen = _stamp(self.path)
        return ring

    def reload(self) -> None:
        """Re-read the key file and its backups (raises ``OSError``/``ValueError`` if they cannot be read)."""
        self.keyring = self._read()

    def reload_quietly(self) -> bool:
        """:meth:`reload`; False (the keys in memory kept) if the files cannot be read."""
        try:
            self.reload()
        except (OSError, ValueError):
            return False
        return True

    def refresh(self) -> bool:
        """Re-read the keys if the key file changed since the last read; whether it did."""
        try:
            if _stamp(self.path) == self._seen:
                return False
            self.reload()
        except (OSError, ValueError) as exc:  # keep the keys in memory; say why the file cannot be read
            log.error("secret key file unreadable; keeping the keys in memory", path=str(self.path), error=str(exc))
            return False
        log.info("secret keys reloaded", path=str(self.path), keys=len(self.keyring.keys))
        return True
