"""`berth backup` keeps TLS private keys sealed: Traefik's ACME storage, uploaded certificates' key files and
any file with a PEM private key go into ``keys.sealed``, never into a clear member, and a restore puts them
back in their places, 0600 in folders 0700. An archive of format version 1 (Traefik's files all in clear)
is still read, its key files written back private. Archive-level only: the dump is a file given as made."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import io
import json
import os
import stat
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from berth_cli import backup_archive as fmt
from berth_cli.backup_run import Changes, Verified, restore_files, verify_archive, write_backup
from berth_cli.layout import Paths

PASSPHRASE = "correct horse battery staple"
FAST = 2**14
NOW = datetime(2026, 12, 5, 9, 0, 0, tzinfo=UTC)
HEADS: dict[str, dict[str, str | None]] = {"api": {"head": "api_0019"}}


def _pem_key() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


@pytest.fixture
def source(tmp_path: Path) -> dict[str, object]:
    """A data directory as a platform with HTTPS leaves it: key files, Traefik's ACME storage, an uploaded
    certificate (its key 0600 in a folder 0700), the default certificate's file (its key inlined), a route."""
    root = tmp_path / "source"
    root.mkdir(mode=0o700)
    account_key, cert_key, upload_key, default_key = _pem_key(), _pem_key(), _pem_key(), _pem_key()
    acme = {
        "berth-http": {
            "Account": {"Email": "", "PrivateKey": base64.b64encode(account_key).decode(), "KeyType": "4096"},
            "Certificates": [
                {
                    "domain": {"main": "shop.example.com"},
                    "certificate": base64.b64encode(b"-----BEGIN CERTIFICATE-----\nAAAA\n").decode(),
                    "key": base64.b64encode(cert_key).decode(),
                    "Store": "default",
                }
            ],
        }
    }
    files = {
        "secret.key": (b"the-platform-key\n", 0o600),
        "admin.token": (b"the-admin-token\n", 0o600),
        "traefik/acme.json": (json.dumps(acme).encode(), 0o600),
        "traefik/certs/c-1a2b.crt": (b"-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n", 0o644),
        "traefik/certs/c-1a2b.key": (upload_key, 0o600),
        "traefik/dynamic/000-berth-default-cert.yml": (
            b"tls:\n  stores:\n    default:\n      defaultCertificate:\n        keyFile: |\n"
            + b"".join(b"          " + line + b"\n" for line in default_key.splitlines()),
            0o644,
        ),
        "traefik/dynamic/web-shop.yml": (b"http:\n  routers: {}\n", 0o644),
        "traefik/static.yml": (b"{}\n", 0o644),
    }
    for name, (data, mode) in files.items():
        _write(root / name, data, mode)
    (root / "traefik" / "certs").chmod(0o700)
    (root / "traefik" / "dynamic").chmod(0o755)
    (root / "traefik").chmod(0o750)
    dump = tmp_path / "database.dump"
    dump.write_bytes(b"PGDMP not a real dump")
    archive = tmp_path / "out" / "backup.tar.gz"
    archive.parent.mkdir()
    write_backup(
        Paths(root),
        archive,
        PASSPHRASE,
        dump,
        database="berth",
        heads=HEADS,
        server_version="17.2",
        now=NOW,
        kdf=fmt.Kdf.new(FAST),
    )
    secrets = [account_key, cert_key, upload_key, default_key]
    return {"root": root, "archive": archive, "files": files, "secrets": secrets, "tmp": tmp_path}


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, mode="r:gz") as tar:
        out = {}
        for info in tar:
            f = tar.extractfile(info)
            assert f is not None
            out[info.name] = f.read()
        return out


def test_which_traefik_files_go_sealed():
    files = {
        "traefik/acme.json": b"{}",
        "traefik/acme/acme.json": b"{}",
        "traefik/certs/c-1.key": b"",
        "traefik/certs/c-1.crt": b"-----BEGIN CERTIFICATE-----\n",
        "traefik/dynamic/000-berth-default-cert.yml": b"keyFile: |\n  -----BEGIN EC PRIVATE KEY-----\n",
        "traefik/store.json": b'{"r": {"Account": {"PrivateKey": "MHc"}}}',
        "traefik/dynamic/web-shop.yml": b"http: {}\n",
        "traefik/dynamic/keys.yml": b"http: {}\n",
    }
    clear, sealed = fmt.split_traefik(files)
    assert sorted(clear) == ["traefik/certs/c-1.crt", "traefik/dynamic/keys.yml", "traefik/dynamic/web-shop.yml"]
    assert sorted(sealed) == [
        "traefik/acme.json",
        "traefik/acme/acme.json",
        "traefik/certs/c-1.key",
        "traefik/dynamic/000-berth-default-cert.yml",
        "traefik/store.json",
    ]


def test_no_private_key_is_in_a_clear_member(source):
    members = _members(source["archive"])
    assert next(iter(members)) == "manifest.json"
    assert set(members) == {
        "manifest.json",
        "database.dump",
        "keys.sealed",
        "traefik/certs/c-1a2b.crt",
        "traefik/dynamic/web-shop.yml",
    }
    manifest = json.loads(members["manifest.json"])
    assert manifest["format_version"] == 3
    assert manifest["keys"]["files"] == ["admin.token", "secret.key"]
    assert manifest["keys"]["traefik"] == [
        "traefik/acme.json",
        "traefik/certs/c-1a2b.key",
        "traefik/dynamic/000-berth-default-cert.yml",
    ]
    assert set(manifest["members"]) == set(members) - {"manifest.json"}
    assert manifest["traefik_modes"] == {
        "traefik": "0750",
        "traefik/acme.json": "0600",
        "traefik/certs": "0700",
        "traefik/certs/c-1a2b.crt": "0644",
        "traefik/certs/c-1a2b.key": "0600",
        "traefik/dynamic": "0755",
        "traefik/dynamic/000-berth-default-cert.yml": "0644",
        "traefik/dynamic/web-shop.yml": "0644",
    }
    whole = gzip.decompress(source["archive"].read_bytes())  # every member, headers included
    for key in source["secrets"]:
        for needle in (key, base64.b64encode(key), key.splitlines()[1]):
            assert needle not in whole
    for marker in (b"PRIVATE KEY", b"PrivateKey", b"the-platform-key", b"the-admin-token"):
        assert marker not in whole
    keys = fmt.authenticate(fmt.parse_manifest(members["manifest.json"]), PASSPHRASE)
    opened = fmt.open_files(members["keys.sealed"], keys)
    files = source["files"]
    assert opened == {name: files[name][0] for name in fmt.sealed_names(manifest)}


def _opened(tmp: Path, archive: Path, name: str) -> tuple[Path, Verified]:
    """A new data directory ``name`` and ``archive`` verified in a staging folder of its own."""
    target = tmp / name
    target.mkdir(mode=0o700)
    staging = tmp / f"staging-{name}"
    staging.mkdir()
    return target, verify_archive(archive, PASSPHRASE, staging)


def test_a_restore_puts_every_file_back_in_its_place_with_its_mode(source):
    target, verified = _opened(source["tmp"], source["archive"], "target")
    assert restore_files(Paths(target), verified, Changes(target, set())) == 5
    files = source["files"]
    for name, (data, mode) in files.items():
        if name == "traefik/static.yml":
            assert not (target / name).exists()
            continue
        assert (target / name).read_bytes() == data, name
    for name in ("secret.key", "admin.token", "traefik/acme.json", "traefik/certs/c-1a2b.key"):
        assert _mode(target / name) == 0o600, name
    # a sealed file is never given back more than 0600; every other mode is the one recorded
    assert _mode(target / "traefik/dynamic/000-berth-default-cert.yml") == 0o600
    assert _mode(target / "traefik/certs") == 0o700
    assert _mode(target / "traefik/certs/c-1a2b.crt") == 0o644
    assert _mode(target / "traefik/dynamic") == 0o755
    assert _mode(target / "traefik") == 0o750


def test_a_recorded_mode_outside_traefik_is_refused(source):
    manifest = json.loads(_members(source["archive"])["manifest.json"])
    manifest["traefik_modes"]["secret.key"] = "0644"
    with pytest.raises(fmt.BackupError, match=r"mode of 'secret\.key' is malformed"):
        fmt.traefik_modes(manifest)
    manifest["traefik_modes"] = {"traefik/x": "4755"}
    with pytest.raises(fmt.BackupError, match="malformed"):
        fmt.traefik_modes(manifest)
    with pytest.raises(fmt.BackupError, match="malformed"):  # before anything is unpacked
        fmt.parse_manifest(json.dumps(manifest).encode())


def test_a_restore_that_fails_removes_the_traefik_files_it_wrote(source):
    target, verified = _opened(source["tmp"], source["archive"], "target")
    changes = Changes(target, set())
    restore_files(Paths(target), verified, changes)
    changes.undo()
    assert list(target.iterdir()) == []


def _version_1_archive(source: dict[str, object], path: Path) -> None:
    """An archive as format version 1 wrote it: only the data directory's key files sealed, every Traefik
    file (the ACME storage included) in clear."""
    root: Path = source["root"]  # type: ignore[assignment]
    kdf = fmt.Kdf.new(FAST)
    keys = fmt.Keys.derive(PASSPHRASE, kdf)
    secret = {n: (root / n).read_bytes() for n in ("admin.token", "secret.key")}
    sealed = fmt.seal_files(secret, keys)
    traefik = {n: (root / n).read_bytes() for n in ("traefik/acme.json", "traefik/dynamic/web-shop.yml")}
    dump = b"PGDMP v1"
    members = {
        "database.dump": (fmt.sha256_hex(dump), len(dump)),
        "keys.sealed": (fmt.sha256_hex(sealed), len(sealed)),
        **{n: (fmt.sha256_hex(d), len(d)) for n, d in traefik.items()},
    }
    manifest = fmt.build_manifest(
        berth_version="0.1",
        created_at=NOW,
        database="berth",
        heads=HEADS,
        server_version="17.2",
        key_names=secret,
        kdf=kdf,
        keys=keys,
        members=members,
    )
    manifest["format_version"] = 1
    del manifest["keys"]["traefik"], manifest["traefik_modes"]
    manifest["mac"] = hmac.new(keys.mac, fmt.canonical(manifest), hashlib.sha256).hexdigest()
    with tarfile.open(path, mode="w:gz") as tar:
        for name, data in [
            ("manifest.json", json.dumps(manifest).encode()),
            ("database.dump", dump),
            ("keys.sealed", sealed),
            *traefik.items(),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_a_version_1_archive_is_still_read_and_its_acme_storage_written_private(source):
    tmp: Path = source["tmp"]
    archive = tmp / "v1.tar.gz"
    _version_1_archive(source, archive)
    target, verified = _opened(tmp, archive, "target-v1")
    assert verified.manifest["format_version"] == 1
    old_umask = os.umask(0o022)
    try:
        assert restore_files(Paths(target), verified, Changes(target, set())) == 2
    finally:
        os.umask(old_umask)
    files = source["files"]
    assert (target / "traefik/acme.json").read_bytes() == files["traefik/acme.json"][0]
    assert _mode(target / "traefik/acme.json") == 0o600
    assert (target / "traefik/dynamic/web-shop.yml").read_bytes() == files["traefik/dynamic/web-shop.yml"][0]
    assert (target / "secret.key").read_bytes() == b"the-platform-key\n"


def test_an_unknown_format_version_is_refused(source):
    members = _members(source["archive"])
    manifest = json.loads(members["manifest.json"])
    manifest["format_version"] = 4
    with pytest.raises(fmt.BackupError, match="format version 4 is not supported"):
        fmt.parse_manifest(json.dumps(manifest).encode())
