"""``berth backup-decrypt``: an object as the scheduler stores it (compressed, then encrypted with the team
key) decrypted and decompressed with the key as the api exports it; a wrong key, a changed byte and a
truncated object each exit 1 with the reason and leave no output; the key is never printed."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from berth_cli.main import app
from berth_common import codecs, streamcrypt

KEY = os.urandom(32)
DATA = b"".join(b"INSERT INTO items VALUES (%d, 'row %d');\n" % (i, i) for i in range(60_000)) + os.urandom(70_000)


def _stored(tmp_path: Path, compression: str, name: str | None = None, data: bytes = DATA) -> Path:
    packer = codecs.packer(compression, KEY)
    body = b"".join(packer.feed(data[i : i + 100_000]) for i in range(0, len(data), 100_000)) + packer.end()
    path = tmp_path / (name or f"20261205T030000Z-b1.sql{codecs.suffix(compression, True)}")
    path.write_bytes(body)
    return path


def _key_file(tmp_path: Path, key: bytes = KEY, as_json: bool = True) -> Path:
    path = tmp_path / "team.key"
    b64 = base64.b64encode(key).decode()
    text = json.dumps({"key_id": streamcrypt.key_id(key).hex(), "key": b64}) if as_json else b64 + "\n"
    path.write_text(text)
    return path


def _run(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["backup-decrypt", *map(str, args)])
    return result.exit_code, result.output


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
@pytest.mark.parametrize("as_json", [True, False])
def test_decrypts_and_decompresses_as_the_name_says(tmp_path: Path, compression: str, as_json: bool) -> None:
    source = _stored(tmp_path, compression)
    out = tmp_path / "dump.sql"
    code, said = _run("--key-file", _key_file(tmp_path, as_json=as_json), source, out)
    assert code == 0, said
    assert out.read_bytes() == DATA
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert base64.b64encode(KEY).decode() not in said


def test_decrypt_only_keeps_the_compressed_stream(tmp_path: Path) -> None:
    source = _stored(tmp_path, "zstd")
    out = tmp_path / "dump.sql.zst"
    code, said = _run("--key-file", _key_file(tmp_path), "--compression", "none", source, out)
    assert code == 0, said
    assert out.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    unzstd = codecs.decompressor("zstd")
    assert unzstd.feed(out.read_bytes()) + unzstd.end() == DATA


def test_a_wrong_key_a_changed_byte_or_a_truncated_object_leave_nothing(tmp_path: Path) -> None:
    source = _stored(tmp_path, "zstd")
    out = tmp_path / "dump.sql"
    code, said = _run("--key-file", _key_file(tmp_path, os.urandom(32)), source, out)
    assert code == 1 and f"encrypted with the backup key {streamcrypt.key_id(KEY).hex()}" in said, said
    assert not out.exists() and not (tmp_path / "dump.sql.part").exists()

    body = bytearray(source.read_bytes())
    body[len(body) // 2] ^= 0x04
    changed = tmp_path / "changed.sql.zst.enc"
    changed.write_bytes(bytes(body))
    code, said = _run("--key-file", _key_file(tmp_path), changed, out)
    assert code == 1 and "does not authenticate" in said, said
    assert not out.exists() and not (tmp_path / "dump.sql.part").exists()

    record = streamcrypt.RECORD_SIZE + streamcrypt.TAG_SIZE
    records = -(-(len(body) - streamcrypt.HEADER_SIZE) // record)
    assert records >= 2
    cut = tmp_path / "cut.sql.zst.enc"  # the final record dropped: cut at a record boundary
    cut.write_bytes(source.read_bytes()[: streamcrypt.HEADER_SIZE + (records - 1) * record])
    code, said = _run("--key-file", _key_file(tmp_path), cut, out)
    assert code == 1 and "truncated" in said, said
    assert not out.exists()


def test_a_bad_key_file_is_named(tmp_path: Path) -> None:
    source = _stored(tmp_path, "gzip")
    bad = tmp_path / "bad.key"
    bad.write_text("not base64 at all!")
    code, said = _run("--key-file", bad, source, tmp_path / "o")
    assert code == 1 and "no base64 key" in said
    bad.write_text(base64.b64encode(b"short").decode())
    code, said = _run("--key-file", bad, source, tmp_path / "o")
    assert code == 1 and "the key has 5 bytes" in said
    code, said = _run("--key-file", tmp_path / "missing.key", source, tmp_path / "o")
    assert code == 1 and "cannot read the key file" in said
