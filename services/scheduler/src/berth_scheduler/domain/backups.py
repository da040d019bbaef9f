"""Backups (pure): the compression actually used, how a backup's bytes are packed (compressed, then
encrypted with the team's key when asked: ``Packing``; the codecs are ``berth_common.codecs``) and its
inverse, and retention.

Object names say what was applied: ``.gz`` or ``.zst``, then ``.enc`` when encrypted. Retention runs
per destination after a new backup was verified, over the verified backups of the same database only:
it keeps the ``keep_count`` newest, those younger than ``keep_days``, and always the newest one.
"""

from __future__ import annotations

import base64
import importlib.util
from dataclasses import dataclass

from berth_common import codecs, streamcrypt

BACKUP_STATES = ("running", "succeeded", "failed")
INTERRUPTED = (
    "the scheduler running this backup stopped (killed or crashed) before it was verified; no object of it is kept"
)


def zstd_available() -> bool:
    return importlib.util.find_spec("zstandard") is not None


def compression_used(requested: str) -> str:
    """``zstd`` when asked for (``zstandard`` is pinned; gzip only if it were missing), else ``gzip``."""
    return "zstd" if requested == "zstd" and zstd_available() else "gzip"


class BackupError(RuntimeError):
    """Why a backup or a restore is not good, for a person (never a secret)."""


Codec = codecs.Codec
StreamError = codecs.StreamError


@dataclass(frozen=True)
class Packing:
    """How a backup's bytes are stored: compressed with ``compression``, then encrypted with the team's
    ``key`` when there is one (``berth_common.streamcrypt``)."""

    compression: str
    key: bytes | None = None

    @property
    def encrypted(self) -> bool:
        return self.key is not None

    def packer(self) -> Codec:
        """Compress, then encrypt: the order that keeps the ratio (ciphertext does not compress)."""
        return codecs.packer(self.compression, self.key)

    def unpacker(self) -> Codec:
        """Decrypt (each record authenticated before any byte of it is passed on), then decompress."""
        return codecs.unpacker(self.compression, self.key)


def packing(compression: str, key: str | None) -> Packing:
    """The packing of a command: its compression, and its team key (the opened, base64 value) if any."""
    try:
        return Packing(compression, base64.b64decode(key, validate=True) if key else None)
    except ValueError:
        raise codecs.StreamError("the backup key of the command is not base64") from None


def restore_packing(compression: str, object_key: str, key: str | None) -> Packing:
    """How to read the stored object ``object_key``: its name says whether it is encrypted (``.enc``); an
    encrypted object without a key, or a key for a plain object, is refused with the reason."""
    encrypted = object_key.endswith(streamcrypt.SUFFIX)
    if encrypted and not key:
        raise codecs.StreamError("the backup object is encrypted and the command carries no backup key")
    return packing(compression, key if encrypted else None)


def compressor(compression: str) -> Codec:
    return codecs.compressor(compression)


def decompressor(compression: str) -> Codec:
    return codecs.decompressor(compression)


@dataclass(frozen=True)
class Stored:
    """A verified backup's copy in one destination."""

    key: str
    created_at: float  # epoch seconds


def to_prune(stored: list[Stored], keep_count: int | None, keep_days: int | None, now: float) -> list[str]:
    """The keys retention deletes: beyond the ``keep_count`` newest, or older than ``keep_days``; never the
    newest. No limit set: nothing."""
    if keep_count is None and keep_days is None:
        return []
    newest_first = sorted(stored, key=lambda s: (s.created_at, s.key), reverse=True)
    out = []
    for i, item in enumerate(newest_first):
        if i == 0:
            continue
        beyond_count = keep_count is not None and i >= keep_count
        too_old = keep_days is not None and now - item.created_at > keep_days * 86400
        if beyond_count or too_old:
            out.append(item.key)
    return out


def exit_reason(tool: str, code: int, stderr: str) -> str:
    """Why a dump or restore tool's run is not good, in words: its exit code (a signal named as such, as
    when the container was killed) and what it wrote to stderr."""
    said = stderr.strip() or "no message"
    if code < 0:
        return f"{tool} was cut off before it ended: {said}"
    if code > 128:
        return f"{tool} was killed by signal {code - 128} (exit code {code}; the container stopped?): {said}"
    return f"{tool} exited with code {code}: {said}"


def stamp(epoch: float) -> str:
    """``20261205T030000Z``: object names sort by time."""
    import time

    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch))
