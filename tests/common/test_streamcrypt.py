"""Berth's streaming encryption of backups (berth_common.streamcrypt) and the codecs that chain it after
compression (berth_common.codecs): round trips around record boundaries, the exact header, and each kind of
damage refused with its reason before any byte of the damaged record is answered."""

from __future__ import annotations

import hashlib
import os
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from berth_common import codecs, streamcrypt
from berth_common.streamcrypt import RECORD_SIZE, StreamCryptError, decrypt, encrypt

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))
SMALL = 1024  # record size for the damage tests: several records from little data
SEALED = SMALL + streamcrypt.TAG_SIZE


def _stream(data: bytes, key: bytes = KEY, size: int = SMALL, piece: int = 777) -> bytes:
    enc = streamcrypt.Encryptor(key, size)
    out = [enc.feed(data[i : i + piece]) for i in range(0, len(data), piece)]
    return b"".join(out) + enc.end()


def _open(data: bytes, key: bytes = KEY, piece: int = 1000) -> bytes:
    dec = streamcrypt.Decryptor(key)
    out = [dec.feed(data[i : i + piece]) for i in range(0, len(data), piece)]
    return b"".join(out) + dec.end()


@pytest.mark.parametrize(
    "size",
    [0, 1, RECORD_SIZE - 1, RECORD_SIZE, RECORD_SIZE + 1, 2 * RECORD_SIZE, 2 * RECORD_SIZE + 1, 3 * RECORD_SIZE - 5],
)
def test_round_trip_around_record_boundaries(size: int) -> None:
    data = os.urandom(size)
    sealed = encrypt(KEY, data)
    records = max(1, -(-size // RECORD_SIZE))
    assert len(sealed) == streamcrypt.HEADER_SIZE + size + records * streamcrypt.TAG_SIZE
    assert decrypt(KEY, sealed) == data
    for piece in (1, 4093, 70_000):
        if size > 70_000 and piece == 1:
            continue
        assert _open(_stream(data, size=RECORD_SIZE, piece=piece), piece=piece) == data


def test_exact_header_bytes() -> None:
    prefix = bytes.fromhex("0102030405060708")
    head = encrypt(KEY, b"", RECORD_SIZE)[: streamcrypt.HEADER_SIZE]
    assert streamcrypt.header(KEY, prefix) == (
        b"BERTHENC" + b"\x01" + b"\x01" + b"\x00\x01\x00\x00" + streamcrypt.key_id(KEY) + prefix
    )
    assert streamcrypt.key_id(KEY) == hashlib.sha256(b"berth backup key id" + KEY).digest()[:8]
    assert head[:22] == b"BERTHENC\x01\x01\x00\x01\x00\x00" + streamcrypt.key_id(KEY)
    assert len(head) == 30


def test_the_documented_format_decrypts_without_berth() -> None:
    """What the docs tell a user to do, with plain AES-GCM: header, then records, the last one flagged."""
    data = os.urandom(3 * SMALL + 100)
    sealed = _stream(data)
    head, body = sealed[:30], sealed[30:]
    size = struct.unpack(">I", head[10:14])[0]
    prefix = head[22:30]
    records = [body[i : i + size + 16] for i in range(0, len(body), size + 16)]
    aead = AESGCM(KEY)
    plain = b"".join(
        aead.decrypt(prefix + i.to_bytes(4, "big"), r, head + (b"\x01" if i == len(records) - 1 else b"\x00"))
        for i, r in enumerate(records)
    )
    assert plain == data


def test_truncated_at_a_record_boundary_is_refused() -> None:
    sealed = _stream(os.urandom(3 * SMALL + 10))
    cut = sealed[: streamcrypt.HEADER_SIZE + 2 * SEALED]
    with pytest.raises(StreamCryptError, match="truncated: it ends after record 1 without its final record"):
        _open(cut)
    with pytest.raises(StreamCryptError, match="truncated: it ends after the header"):
        _open(sealed[: streamcrypt.HEADER_SIZE])
    with pytest.raises(StreamCryptError, match="ends inside the encryption header"):
        _open(sealed[:10])
    with pytest.raises(StreamCryptError, match="truncated: it ends inside record 3"):
        _open(sealed[: streamcrypt.HEADER_SIZE + 3 * SEALED + 5])


def test_a_flipped_byte_is_refused_and_nothing_of_its_record_is_answered() -> None:
    data = os.urandom(3 * SMALL + 10)
    sealed = bytearray(_stream(data))
    sealed[streamcrypt.HEADER_SIZE + SEALED + 5] ^= 0x01  # inside record 1
    dec = streamcrypt.Decryptor(KEY)
    got = dec.feed(bytes(sealed[: streamcrypt.HEADER_SIZE + SEALED + 1]))
    assert got == data[:SMALL]  # record 0 is good and answered
    with pytest.raises(StreamCryptError, match="record 1 of the encrypted object does not authenticate"):
        dec.feed(bytes(sealed[streamcrypt.HEADER_SIZE + SEALED + 1 :]))


def test_a_changed_header_is_refused() -> None:
    sealed = bytearray(_stream(os.urandom(SMALL * 2)))
    sealed[25] ^= 0x80  # the nonce prefix
    with pytest.raises(StreamCryptError, match=r"record 0 .* does not authenticate"):
        _open(bytes(sealed))
    bad = bytearray(_stream(b"x"))
    bad[0:8] = b"NOTBERTH"
    with pytest.raises(StreamCryptError, match="not a Berth encrypted stream"):
        _open(bytes(bad))
    bad = bytearray(_stream(b"x"))
    bad[8] = 2
    with pytest.raises(StreamCryptError, match="format version 2"):
        _open(bytes(bad))


def test_reordered_records_are_refused() -> None:
    sealed = _stream(os.urandom(4 * SMALL + 10))
    h = streamcrypt.HEADER_SIZE
    r = [sealed[h + i * SEALED : h + (i + 1) * SEALED] for i in range(4)]
    swapped = sealed[:h] + r[1] + r[0] + r[2] + r[3] + sealed[h + 4 * SEALED :]
    with pytest.raises(StreamCryptError, match=r"record 0 .* does not authenticate"):
        _open(swapped)
    dropped = sealed[:h] + r[0] + r[2] + r[3] + sealed[h + 4 * SEALED :]
    with pytest.raises(StreamCryptError, match=r"record 1 .* does not authenticate"):
        _open(dropped)


def test_bytes_after_the_final_record_are_refused() -> None:
    sealed = _stream(os.urandom(SMALL // 2))
    with pytest.raises(StreamCryptError):
        _open(sealed + _stream(b"more")[streamcrypt.HEADER_SIZE :])


def test_a_wrong_key_is_named_before_any_record() -> None:
    sealed = _stream(os.urandom(SMALL * 2))
    with pytest.raises(StreamCryptError, match=f"encrypted with the backup key {streamcrypt.key_id(KEY).hex()}"):
        streamcrypt.Decryptor(OTHER).feed(sealed[:30])
    with pytest.raises(StreamCryptError, match="a backup key has 32 bytes, this one has 5"):
        streamcrypt.Decryptor(b"short")


def test_a_different_key_id_in_the_header_is_refused() -> None:
    sealed = bytearray(_stream(os.urandom(SMALL)))
    sealed[14:22] = streamcrypt.key_id(OTHER)
    with pytest.raises(StreamCryptError, match="encrypted with the backup key " + streamcrypt.key_id(OTHER).hex()):
        _open(bytes(sealed))


def test_each_stream_has_its_own_nonce_prefix() -> None:
    a, b = encrypt(KEY, b"same"), encrypt(KEY, b"same")
    assert a[22:30] != b[22:30] and a[30:] != b[30:]


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_compress_then_encrypt_round_trip_in_bounded_pieces(compression: str) -> None:
    data = b"".join(b"row,%d,text\n" % i for i in range(200_000))
    packer = codecs.packer(compression, KEY)
    sealed = b"".join(packer.feed(data[i : i + 100_000]) for i in range(0, len(data), 100_000)) + packer.end()
    assert sealed[:8] == b"BERTHENC"
    assert b"row,1234,text" not in sealed
    unpacker = codecs.unpacker(compression, KEY)
    out = []
    for i in range(0, len(sealed), 50_000):
        for piece in unpacker.pieces(sealed[i : i + 50_000]):
            assert len(piece) <= 2 << 20
            out.append(piece)
    out.append(unpacker.end())
    assert b"".join(out) == data
    with pytest.raises(codecs.StreamError, match="encrypted with the backup key"):
        list(codecs.unpacker(compression, OTHER).pieces(sealed))
    cut = codecs.unpacker(compression, KEY)
    list(cut.pieces(sealed[:-1]))
    with pytest.raises(codecs.StreamError, match=r"does not authenticate|truncated"):
        cut.end()


def test_names_say_what_was_applied() -> None:
    assert codecs.suffix("gzip", False) == ".gz"
    assert codecs.suffix("zstd", False) == ".zst"
    assert codecs.suffix("zstd", True) == ".zst.enc"
    assert codecs.suffix("gzip", True) == ".gz.enc"


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_a_truncated_compressed_stream_is_named(compression: str) -> None:
    data = b"".join(b"line %d\n" % i for i in range(50_000))
    packer = codecs.compressor(compression)
    body = packer.feed(data) + packer.end()
    whole = codecs.decompressor(compression)
    assert b"".join(whole.pieces(body)) + whole.end() == data
    cut = codecs.decompressor(compression)
    list(cut.pieces(body[:-5]))
    with pytest.raises(codecs.StreamError, match=f"the {compression} stream ends before its end marker"):
        cut.end()
