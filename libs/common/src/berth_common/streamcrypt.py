"""Berth's streaming authenticated encryption of backup objects (``.enc``), with a team's 32-byte key.

A stream is encrypted in records of a fixed size, each sealed on its own, so memory stays flat whatever
the size, and a reader learns of damage at the first record that does not authenticate, before passing
on any byte of it. Truncation, reordering, a changed byte and a different key are each detected.

Format, version 1 (all integers big-endian)::

    header (30 bytes)
      0   8  magic          b"BERTHENC"
      8   1  version        0x01
      9   1  algorithm      0x01 = AES-256-GCM
     10   4  record size    plaintext bytes of every record but the last (65536)
     14   8  key id         the first 8 bytes of SHA-256(b"berth backup key id" || key)
     22   8  nonce prefix   random, new for every stream
    records, one after another
      ciphertext || 16-byte GCM tag
      record i (from 0) is sealed with
        nonce = nonce prefix (8 bytes) || i (4 bytes)
        associated data = the 30 header bytes || final flag (1 byte: 0x01 for the last record, else 0x00)

Every record but the last holds exactly ``record size`` plaintext bytes; the last holds 1 to ``record
size`` bytes (0 only when the whole plaintext is empty) and is the only one sealed with the final flag
set, so a stream cut at a record boundary does not authenticate as complete. The header is in every
record's associated data, so a changed header is detected too. To decrypt without Berth: read the
header, check the key id, then take records of ``record size + 16`` bytes; the one that ends the file is
the final one (it may be shorter). Any AES-GCM implementation opens each record with the nonce and
associated data above.

The key id is derived from the key, so a wrong key is named as such before any record is read.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"BERTHENC"
VERSION = 1
AES_256_GCM = 1
RECORD_SIZE = 64 * 1024
KEY_SIZE = 32
TAG_SIZE = 16
PREFIX_SIZE = 8
HEADER = struct.Struct(">8sBBI8s8s")
HEADER_SIZE = HEADER.size  # 30
MAX_RECORDS = 1 << 32
SUFFIX = ".enc"


class StreamCryptError(ValueError):
    """The stream cannot be decrypted: the reason says why (never a key)."""


def key_id(key: bytes) -> bytes:
    """The 8 bytes that name ``key`` in a header (not secret: they do not reveal the key)."""
    return hashlib.sha256(b"berth backup key id" + key).digest()[:8]


def new_key() -> bytes:
    return os.urandom(KEY_SIZE)


def _check_key(key: bytes) -> None:
    if len(key) != KEY_SIZE:
        raise StreamCryptError(f"a backup key has {KEY_SIZE} bytes, this one has {len(key)}")


def header(key: bytes, prefix: bytes, record_size: int = RECORD_SIZE) -> bytes:
    """The header of a stream sealed with ``key`` and the nonce prefix ``prefix``."""
    return HEADER.pack(MAGIC, VERSION, AES_256_GCM, record_size, key_id(key), prefix)


def _aead(key: bytes) -> AESGCM:
    """AES-256-GCM with ``key``. ``cryptography`` is imported here, at the first stream, not with the module:
    processes that only name the format (``SUFFIX``, ``key_id``, ``new_key``) never encrypt, and its compiled
    bindings stay resident once loaded."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


def _nonce(prefix: bytes, index: int) -> bytes:
    if index >= MAX_RECORDS:
        raise StreamCryptError("the stream has more records than the format allows")
    return prefix + index.to_bytes(4, "big")


class Encryptor:
    """Encrypts a stream: ``feed`` what comes, ``end`` once; each answers the bytes to write (the header
    comes with the first answer)."""

    def __init__(self, key: bytes, record_size: int = RECORD_SIZE, prefix: bytes | None = None) -> None:
        _check_key(key)
        self._aead = _aead(key)
        self._prefix = prefix if prefix is not None else os.urandom(PREFIX_SIZE)
        self._header = header(key, self._prefix, record_size)
        self._size = record_size
        self._index = 0
        self._held = bytearray()
        self._started = False
        self._ended = False

    def _seal(self, plain: bytes, final: bool) -> bytes:
        aad = self._header + (b"\x01" if final else b"\x00")
        sealed = self._aead.encrypt(_nonce(self._prefix, self._index), plain, aad)
        self._index += 1
        return sealed

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        return [self._header]

    def feed(self, data: bytes) -> bytes:
        if self._ended:
            raise StreamCryptError("the stream was ended already")
        out = self._start()
        self._held += data
        size = self._size
        # a full record is sealed only once a byte after it is known: the last record carries the flag
        done = 0
        while len(self._held) - done > size:
            out.append(self._seal(bytes(self._held[done : done + size]), final=False))
            done += size
        del self._held[:done]
        return b"".join(out)

    def end(self) -> bytes:
        if self._ended:
            return b""
        out = self._start()
        out.append(self._seal(bytes(self._held), final=True))
        self._held.clear()
        self._ended = True
        return b"".join(out)


def read_header(data: bytes, key: bytes) -> tuple[bytes, int, bytes]:
    """Check a stream's header against ``key``: its bytes, record size and nonce prefix."""
    if len(data) < HEADER_SIZE:
        raise StreamCryptError("the object ends inside the encryption header (truncated, or not encrypted)")
    magic, version, algorithm, size, kid, prefix = HEADER.unpack(data[:HEADER_SIZE])
    if magic != MAGIC:
        raise StreamCryptError("the object is not a Berth encrypted stream (no BERTHENC header)")
    if version != VERSION:
        raise StreamCryptError(f"the encrypted stream has format version {version}; this Berth reads {VERSION}")
    if algorithm != AES_256_GCM:
        raise StreamCryptError(f"the encrypted stream uses algorithm {algorithm}, which this Berth does not know")
    if not 1 <= size <= 1 << 24:
        raise StreamCryptError(f"the encrypted stream names a record size of {size} bytes, which is not allowed")
    if kid != key_id(key):
        raise StreamCryptError(
            f"the object was encrypted with the backup key {kid.hex()}, not with the key given ({key_id(key).hex()})"
        )
    return bytes(data[:HEADER_SIZE]), size, prefix


class Decryptor:
    """Decrypts a stream: ``feed`` answers the plaintext of every record known to be complete, ``end``
    that of the last one; a record that does not authenticate raises :class:`StreamCryptError` and its
    bytes are never answered."""

    def __init__(self, key: bytes) -> None:
        _check_key(key)
        self._key = key
        self._aead = _aead(key)
        self._held = bytearray()
        self._header = b""
        self._prefix = b""
        self._record = 0
        self._index = 0
        self._ended = False

    def _open(self, sealed: bytes, final: bool) -> bytes:
        from cryptography.exceptions import InvalidTag  # loaded with the cipher (``_aead``)

        aad = self._header + (b"\x01" if final else b"\x00")
        nonce = _nonce(self._prefix, self._index)
        try:
            plain = self._aead.decrypt(nonce, sealed, aad)
        except InvalidTag:
            raise StreamCryptError(self._why(sealed, final)) from None
        self._index += 1
        return plain

    def _why(self, sealed: bytes, final: bool) -> str:
        from cryptography.exceptions import InvalidTag

        if final:
            with contextlib.suppress(InvalidTag):
                self._aead.decrypt(_nonce(self._prefix, self._index), sealed, self._header + b"\x00")
                return f"the object is truncated: it ends after record {self._index} without its final record"
        return f"record {self._index} of the encrypted object does not authenticate (changed or reordered bytes)"

    def feed(self, data: bytes) -> bytes:
        if self._ended:
            raise StreamCryptError("the stream was ended already")
        self._held += data
        if not self._header:
            if len(self._held) < HEADER_SIZE:
                return b""
            self._header, size, self._prefix = read_header(bytes(self._held[:HEADER_SIZE]), self._key)
            self._record = size + TAG_SIZE
            del self._held[:HEADER_SIZE]
        out = []
        done = 0
        # a whole record with bytes after it is not the last one
        while len(self._held) - done > self._record:
            out.append(self._open(bytes(self._held[done : done + self._record]), final=False))
            done += self._record
        del self._held[:done]
        return b"".join(out)

    def end(self) -> bytes:
        if self._ended:
            return b""
        self._ended = True
        if not self._header:
            read_header(bytes(self._held), self._key)  # raises: too short
        if len(self._held) < TAG_SIZE:
            raise StreamCryptError(
                f"the object is truncated: it ends inside record {self._index}"
                if self._held or self._index
                else "the object is truncated: it ends after the header, before any record"
            )
        plain = self._open(bytes(self._held), final=True)
        self._held.clear()
        return plain


def encrypt(key: bytes, data: bytes, record_size: int = RECORD_SIZE) -> bytes:
    """``data`` encrypted at once (for tests and small payloads)."""
    enc = Encryptor(key, record_size)
    return enc.feed(data) + enc.end()


def decrypt(key: bytes, data: bytes) -> bytes:
    dec = Decryptor(key)
    return dec.feed(data) + dec.end()
