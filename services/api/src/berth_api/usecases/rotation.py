"""Rotation of the api's secret key (``berth secrets rotate-key``): a new key file, every sealed value of the
api schema re-sealed with it in one transaction, the old key kept as a dated backup (0600) until success.

1. A new key is written to ``<key>.next`` and the old one copied to ``<key>.<UTC time>.bak`` (both 0600).
2. One transaction takes the key lock exclusively (every transaction that seals holds it shared, so none is
   in flight, and new ones wait), re-seals every value with the new key, renames ``.next`` over the key
   file, and commits. A running api re-reads the key file when it changes and whenever it meets a key id it
   does not know, so it keeps opening values throughout; the next value it seals uses the new key.
3. On success the backup is removed (``keep_backup`` keeps it). If a value does not open, nothing changes
   (the transaction rolls back; the new key and the backup are removed). If the commit itself fails after
   the rename, the backup stays: the api reads with it, and running the command again completes the job.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_api.adapters.sealed import Resealed, hold_for_rotation, reseal_all
from berth_api.adapters.secretbox import SecretBox
from berth_common.keyfile import backup_paths, write_private_file
from berth_common.logging import get_logger

log = get_logger(__name__)


class RotationError(RuntimeError):
    """Rotation could not start or finish; the message says what state the key files are in."""


@dataclass(frozen=True)
class Rotated:
    key_path: Path
    backup: Path | None  # kept only with keep_backup
    resealed: Resealed


def _read(path: Path) -> bytes:
    data = path.read_bytes().strip()
    if len(data) < 32:
        raise RotationError(f"the key file {path} holds fewer than 32 bytes")
    return data


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class _Files:
    key: Path
    next: Path
    backup: Path
    box: SecretBox  # the new key (seals), the old one and earlier backups (open)


def _prepare(key_path: Path, now: datetime) -> _Files:
    """Write the new key to ``.next`` and the old one to a dated backup (both 0600)."""
    if not key_path.is_file():
        raise RotationError(f"no key file at {key_path} (the api creates it at its first start)")
    old = _read(key_path)
    older = [_read(p) for p in backup_paths(key_path)]  # left by an earlier run: they may still be needed
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    backup = key_path.with_name(f"{key_path.name}.{stamp}.bak")
    n = 1
    while backup.exists():
        n += 1
        backup = key_path.with_name(f"{key_path.name}.{stamp}-{n}.bak")
    new = secrets.token_hex(32).encode()
    next_path = key_path.with_name(key_path.name + ".next")
    write_private_file(next_path, new.decode() + "\n")  # replaces a stale one from an interrupted run
    write_private_file(backup, old.decode() + "\n")
    return _Files(key_path, next_path, backup, SecretBox([new, old, *older]))


def _install(files: _Files) -> None:
    os.replace(files.next, files.key)
    _fsync_dir(files.key.parent)


def _discard(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
    _fsync_dir(paths[0].parent)


DEADLOCK_ATTEMPTS = 5


def _deadlock(exc: DBAPIError) -> bool:
    """PostgreSQL ended the transaction to break a deadlock (SQLSTATE 40P01) or a serialization conflict."""
    code = getattr(exc.orig, "sqlstate", None) or getattr(getattr(exc.orig, "__cause__", None), "sqlstate", None)
    return code in ("40P01", "40001") or "deadlock detected" in str(exc)


async def rotate(
    sessionmaker: async_sessionmaker[AsyncSession],
    key_path: Path,
    *,
    keep_backup: bool = False,
    now: datetime | None = None,
) -> Rotated:
    files = await asyncio.to_thread(_prepare, key_path, now or datetime.now(UTC))
    installed = False
    try:
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                async with sessionmaker() as s:
                    async with s.begin():
                        await hold_for_rotation(s)
                        resealed = await reseal_all(s, files.box)
                        _install(files)  # under the exclusive lock: nothing seals until the commit
                        installed = True
                break
            except DBAPIError as exc:  # a writer locked a row first: PostgreSQL ended this transaction
                if installed or attempt == DEADLOCK_ATTEMPTS or not _deadlock(exc):
                    raise
                log.info("key rotation met a concurrent write; trying again", attempt=attempt)
                await asyncio.sleep(0.2 * attempt)
    except BaseException as exc:
        if installed:
            raise RotationError(
                f"the new key is in place but the re-sealed values were not committed ({type(exc).__name__}: "
                f"{exc}); the old key stays in {files.backup} so every value still opens: run the command again"
            ) from exc
        _discard(files.next, files.backup)
        raise
    if not keep_backup:
        _discard(files.backup)
    log.info("secret key rotated", key=str(key_path), resealed=resealed.counts, backup_kept=keep_backup)
    return Rotated(key_path=key_path, backup=files.backup if keep_backup else None, resealed=resealed)
