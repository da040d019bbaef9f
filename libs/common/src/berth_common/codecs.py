"""Streaming codecs of backup objects: gzip, zstd, Berth's encryption (``berth_common.streamcrypt``) and a
chain of them, shared by the scheduler (backups and restores) and the cli (``berth backup-decrypt``).

A codec is fed the stream in pieces and answers its output as it goes; ``end`` answers the rest and checks
that the stream was complete. ``pieces`` answers the output of one input piece in bounded pieces, so a
highly compressed piece never expands into memory at once. Object names say what was applied, in order:
``.gz`` or ``.zst``, then ``.enc`` when encrypted (``suffix``).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any, Literal, Protocol

from berth_common import streamcrypt

CompressionName = Literal["gzip", "zstd"]
EXTENSIONS: dict[str, str] = {"gzip": ".gz", "zstd": ".zst"}
ZSTD_LEVEL = 3  # zstd's own default: faster than gzip -6 at a similar or better ratio
ZSTD_SLICE = 16 * 1024  # compressed input fed to zstd at once when decompressing (bounds each output)


class StreamError(ValueError):
    """A stored stream cannot be read back (damaged, truncated, or a wrong key): the reason, for a person."""


class Codec(Protocol):
    def feed(self, data: bytes) -> bytes: ...

    def pieces(self, data: bytes, limit: int = 1 << 20) -> Iterator[bytes]: ...

    def end(self) -> bytes: ...


def suffix(compression: str, encrypted: bool) -> str:
    """What an object's name ends with: the compression's extension, then ``.enc`` when encrypted."""
    return EXTENSIONS[compression] + (streamcrypt.SUFFIX if encrypted else "")


class _Compression:
    """What gzip and zstd share: ``_z`` compresses or decompresses; the end checks the stream was whole."""

    NAME = ""
    _z: Any
    _compress: bool

    def end(self) -> bytes:
        if self._compress:
            return bytes(self._z.flush())
        if not self._z.eof:
            raise StreamError(f"the {self.NAME} stream ends before its end marker (truncated object)")
        return self._rest()

    def _rest(self) -> bytes:
        return b""


class Gzip(_Compression):
    NAME = "gzip"

    def __init__(self, compress: bool, level: int = 6) -> None:
        self._z = zlib.compressobj(level, zlib.DEFLATED, 31) if compress else zlib.decompressobj(31)
        self._compress = compress

    def feed(self, data: bytes) -> bytes:
        return bytes(self._z.compress(data) if self._compress else self._z.decompress(data))

    def pieces(self, data: bytes, limit: int = 1 << 20) -> Iterator[bytes]:
        if self._compress:
            yield self.feed(data)
            return
        while data:
            try:
                out = bytes(self._z.decompress(data, limit))
            except zlib.error as exc:
                raise StreamError(f"the gzip stream is damaged: {exc}") from None
            data = self._z.unconsumed_tail
            if out:
                yield out

    def _rest(self) -> bytes:
        return bytes(self._z.flush())


class Zstd(_Compression):
    """One zstd frame (what the compressor writes; the decompressor reads exactly one)."""

    NAME = "zstd"

    def __init__(self, compress: bool, level: int = ZSTD_LEVEL) -> None:
        import zstandard

        self._compress = compress
        self._z = (
            zstandard.ZstdCompressor(level=level).compressobj()
            if compress
            else zstandard.ZstdDecompressor().decompressobj(read_across_frames=False)
        )
        self._error = zstandard.ZstdError

    def feed(self, data: bytes) -> bytes:
        if self._compress:
            return bytes(self._z.compress(data))
        return b"".join(self.pieces(data))

    def pieces(self, data: bytes, limit: int = 1 << 20) -> Iterator[bytes]:
        if self._compress:
            yield self.feed(data)
            return
        view = memoryview(data)
        for start in range(0, len(view), ZSTD_SLICE):
            if self._z.eof:
                raise StreamError("the object has bytes after the end of its zstd stream")
            try:
                out = bytes(self._z.decompress(view[start : start + ZSTD_SLICE]))
            except self._error as exc:
                raise StreamError(f"the zstd stream is damaged: {exc}") from None
            if out:
                yield out


def compressor(compression: str) -> Codec:
    return Zstd(True) if compression == "zstd" else Gzip(True)


def decompressor(compression: str) -> Codec:
    return Zstd(False) if compression == "zstd" else Gzip(False)


class Encrypt:
    """Berth's encryption as a codec (``streamcrypt.Encryptor``)."""

    def __init__(self, key: bytes) -> None:
        self._e = streamcrypt.Encryptor(key)

    def feed(self, data: bytes) -> bytes:
        return self._e.feed(data)

    def pieces(self, data: bytes, limit: int = 1 << 20) -> Iterator[bytes]:
        yield self._e.feed(data)

    def end(self) -> bytes:
        return self._e.end()


class Decrypt:
    """Berth's decryption as a codec: only authenticated records are answered."""

    def __init__(self, key: bytes) -> None:
        try:
            self._d = streamcrypt.Decryptor(key)
        except streamcrypt.StreamCryptError as exc:
            raise StreamError(str(exc)) from None

    def feed(self, data: bytes) -> bytes:
        try:
            return self._d.feed(data)
        except streamcrypt.StreamCryptError as exc:
            raise StreamError(str(exc)) from None

    def pieces(self, data: bytes, limit: int = 1 << 20) -> Iterator[bytes]:
        out = self.feed(data)
        if out:
            yield out

    def end(self) -> bytes:
        try:
            return self._d.end()
        except streamcrypt.StreamCryptError as exc:
            raise StreamError(str(exc)) from None


class Chain:
    """``first`` then ``second``: what ``first`` answers is fed to ``second`` (compress then encrypt;
    decrypt then decompress)."""

    def __init__(self, first: Codec, second: Codec) -> None:
        self.first, self.second = first, second

    def feed(self, data: bytes) -> bytes:
        return self.second.feed(self.first.feed(data))

    def pieces(self, data: bytes, limit: int = 1 << 20) -> Iterator[bytes]:
        for piece in self.first.pieces(data, limit):
            yield from self.second.pieces(piece, limit)

    def end(self) -> bytes:
        tail = b"".join(self.second.pieces(self.first.end()))
        return tail + self.second.end()


def packer(compression: str, key: bytes | None = None) -> Codec:
    """What a backup's stream goes through: compressed, then encrypted with ``key`` when given."""
    codec = compressor(compression)
    return Chain(codec, Encrypt(key)) if key is not None else codec


def unpacker(compression: str, key: bytes | None = None) -> Codec:
    """The inverse of :func:`packer`: decrypted (every record authenticated first), then decompressed."""
    codec = decompressor(compression)
    return Chain(Decrypt(key), codec) if key is not None else codec
