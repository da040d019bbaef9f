"""``berth backup-decrypt``: a downloaded backup object back to the dump tool's output, without Berth running.

    berth backup-decrypt --key-file K IN OUT [--compression auto|zstd|gzip|none]

``K`` is the team's backup key as ``GET /v1/team/backup-key`` answers it (the JSON, or its ``key`` value,
base64, on the first line). ``IN`` is an object as stored (``<id>/<time>-<backup>.<format>.<zst|gz>.enc``):
it is decrypted (every record authenticated before it is written: ``berth_common.streamcrypt``) and, by
default, decompressed as its name says. ``OUT`` is written next to itself as ``OUT.part`` first, mode 0600,
and renamed only when the whole object was good: a wrong key, a changed byte or a truncated object leaves
no ``OUT`` and exits 1 with the reason. ``-`` as ``OUT`` writes to stdout. Memory stays flat whatever the
size. The key is never printed.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sys
from pathlib import Path
from typing import Annotated, BinaryIO, Literal

import typer

from berth_common import codecs, streamcrypt

CHUNK = 1 << 20
Compression = Literal["auto", "zstd", "gzip", "none"]


class DecryptError(RuntimeError):
    """Why the object cannot be decrypted, for a person (never the key)."""


def read_key(path: Path) -> bytes:
    """The 32-byte key from the export's JSON or from a base64 line."""
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise DecryptError(f"cannot read the key file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if text.startswith("{"):
        try:
            text = str(json.loads(text)["key"])
        except (ValueError, KeyError, TypeError):
            raise DecryptError(
                "the key file is JSON without a 'key' field (GET /v1/team/backup-key answers one)"
            ) from None
    line = text.splitlines()[0].strip() if text else ""
    try:
        key = base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptError("the key file holds no base64 key") from None
    if len(key) != streamcrypt.KEY_SIZE:
        raise DecryptError(f"the key has {len(key)} bytes; a backup key has {streamcrypt.KEY_SIZE}")
    return key


def compression_of(name: str, asked: Compression) -> str | None:
    """The compression to undo: as asked, or (``auto``) as the object's name says before ``.enc``."""
    if asked != "auto":
        return None if asked == "none" else asked
    stem = name.removesuffix(streamcrypt.SUFFIX)
    for compression, extension in codecs.EXTENSIONS.items():
        if stem.endswith(extension):
            return compression
    return None


def unpack(source: BinaryIO, target: BinaryIO, key: bytes, compression: str | None) -> int:
    """Stream ``source`` through decryption (then decompression) into ``target``; the bytes written."""
    decrypt: codecs.Codec = codecs.Decrypt(key)
    codec: codecs.Codec = codecs.Chain(decrypt, codecs.decompressor(compression)) if compression else decrypt
    written = 0
    try:
        while chunk := source.read(CHUNK):
            for piece in codec.pieces(chunk):
                target.write(piece)
                written += len(piece)
        tail = codec.end()
    except codecs.StreamError as exc:
        raise DecryptError(str(exc)) from None
    target.write(tail)
    return written + len(tail)


def decrypt_file(key_file: Path, source: Path, output: str, compression: Compression = "auto") -> int:
    key = read_key(key_file)
    how = compression_of(source.name, compression)
    try:
        reader = source.open("rb")
    except OSError as exc:
        raise DecryptError(f"cannot read {source}: {exc.strerror}") from None
    with reader:
        if output == "-":
            return unpack(reader, sys.stdout.buffer, key, how)
        target = Path(output)
        part = target.with_name(target.name + ".part")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                written = unpack(reader, out, key, how)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        part.replace(target)
        return written


def backup_decrypt(
    source: Annotated[Path, typer.Argument(help="the encrypted object as downloaded (*.zst.enc, *.gz.enc)")],
    output: Annotated[str, typer.Argument(help="where the dump goes ('-': stdout)")],
    key_file: Annotated[Path, typer.Option("--key-file", help="the team's key: GET /v1/team/backup-key's answer")],
    compression: Annotated[
        str, typer.Option("--compression", help="auto (from the name), zstd, gzip or none (decrypt only)")
    ] = "auto",
) -> None:
    """Decrypt (and decompress) a backup object encrypted with the team's backup key."""
    if compression not in ("auto", "zstd", "gzip", "none"):
        typer.echo("error: --compression is auto, zstd, gzip or none", err=True)
        raise typer.Exit(2)
    try:
        written = decrypt_file(key_file, source, output, compression)  # type: ignore[arg-type]
    except DecryptError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if output != "-":
        typer.echo(f"{written} bytes written to {output}", err=True)
