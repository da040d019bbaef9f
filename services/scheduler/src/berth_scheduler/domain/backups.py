"""Backups (pure): the compression actually used, streaming compression and its inverse, and retention.

zstd is used only when the ``zstandard`` package is installed (it is not among Berth's pinned packages):
otherwise gzip, and the event and the object's name say gzip. Retention runs per destination after a new
backup was verified, over the verified backups of the same database only: it keeps the ``keep_count``
newest, those younger than ``keep_days``, and always the newest one.
"""

from __future__ import annotations

import importlib.util
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

BACKUP_STATES = ("running", "succeeded", "failed")
INTERRUPTED = (
    "the scheduler running this backup stopped (killed or crashed) before it was verified; no object of it is kept"
)


def zstd_available() -> bool:
    return importlib.util.find_spec("zstandard") is not None


def compression_used(requested: str) -> str:
    """``zstd`` when asked for and available, else ``gzip``."""
    return "zstd" if requested == "zstd" and zstd_available() else "gzip"


class Codec(Protocol):
    def feed(self, data: bytes) -> bytes: ...

    def pieces(self, data: bytes, limit: int = 1 << 20) -> Iterator[bytes]: ...

    def end(self) -> bytes: ...


class _Gzip:
    def __init__(self, compress: bool, level: int = 6) -> None:
        self._z: Any = zlib.compressobj(level, zlib.DEFLATED, 31) if compress else zlib.decompressobj(31)
        self._compress = compress

    def feed(self, data: bytes) -> bytes:
        return bytes(self._z.compress(data) if self._compress else self._z.decompress(data))

    def pieces(self, data: bytes, limit: int = 1 << 20) -> Iterator[bytes]:
        """Decompress ``data`` in pieces of at most ``limit`` bytes (a highly compressed chunk never
        expands into memory at once)."""
        while data:
            out = bytes(self._z.decompress(data, limit))
            data = self._z.unconsumed_tail
            if out:
                yield out

    def end(self) -> bytes:
        if self._compress:
            return bytes(self._z.flush())
        if not self._z.eof:
            raise ValueError("the gzip stream ends before its end marker (truncated object)")
        return bytes(self._z.flush())


class _Zstd:  # pragma: no cover - zstandard is not installed here
    def __init__(self, compress: bool) -> None:
        import zstandard

        self._compress = compress
        self._z = zstandard.ZstdCompressor().compressobj() if compress else zstandard.ZstdDecompressor().decompressobj()

    def feed(self, data: bytes) -> bytes:
        return bytes(self._z.compress(data) if self._compress else self._z.decompress(data))

    def pieces(self, data: bytes, limit: int = 1 << 20) -> Iterator[bytes]:
        yield self.feed(data)

    def end(self) -> bytes:
        return bytes(self._z.flush()) if self._compress else b""


def compressor(compression: str) -> Codec:
    return _Zstd(True) if compression == "zstd" else _Gzip(True)


def decompressor(compression: str) -> Codec:
    return _Zstd(False) if compression == "zstd" else _Gzip(False)


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
