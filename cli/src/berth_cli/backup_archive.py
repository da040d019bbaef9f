"""The control plane's backup archive as data: its members, its manifest, the sealed keys, the tool argv.

One archive (a gzip-compressed tar, ``berth-backup-<UTC time>.tar.gz``) rebuilds a Berth host:

- ``manifest.json`` (first): the Berth version, the database and each service's schema head, how the keys
  are sealed, and the sha256 and size of every other member; authenticated by an HMAC-SHA256 with a key
  derived from the passphrase, so a member and its checksum cannot be changed together unnoticed;
- ``database.dump``: ``pg_dump --format=custom`` of the platform's database, every service's schema in one
  consistent snapshot (the schemas live in one database, each owned by its service's role);
- ``keys.sealed``: the data directory's secret files (``secret.key``, the api's key file and its dated
  backups, the admin token) and Traefik's files that hold a private key (its ACME storage ``acme.json``,
  uploaded certificates' ``.key`` files, any file with a PEM private key such as the default certificate)
  sealed with AES-256-GCM under a key derived from the passphrase by scrypt; the plain keys are never in
  the archive;
- ``traefik/...``: Traefik's other files, in clear (dynamic routes, certificates without their keys;
  ``static.yml`` is written at each start). The manifest's ``traefik_modes`` keeps the mode of each of
  Traefik's files and folders, so a restore gives them back as they were (a sealed file: never more than
  0600).
- ``nats/<stream>.snapshot``: the NATS JetStream store, one snapshot per stream as the server's
  JetStream API gives it (messages and consumer states; :mod:`berth_cli.backup_nats`); the manifest's
  ``nats`` section lists each stream's configuration and state and when the snapshots were taken.

Format version 1 kept Traefik's files all in clear; such an archive is still read (its key files are
written back private, as version 2 writes its sealed ones). Versions 1 and 2 hold no NATS store.

Nothing here does I/O: the adapter (:mod:`berth_cli.backup_run`) lists files, runs the tools and writes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

FORMAT = "berth-control-plane-backup"
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
MANIFEST = "manifest.json"
DATABASE_MEMBER = "database.dump"
KEYS_MEMBER = "keys.sealed"
TRAEFIK_PREFIX = "traefik/"
NATS_PREFIX = "nats/"
SUFFIX = ".tar.gz"
MIN_PASSPHRASE = 12
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1  # 128 MiB, under a second: every guess costs as much
KEYS_AAD = b"berth control plane keys v1"
CHECK_TEXT = b"berth backup passphrase check v1"
_NONCE = 12

# Secret files of the data directory that go sealed: the platform's key, the api's key file (and the dated
# backups rotation leaves, which still open older values), other services' key files, the admin token.
# ``postgres.password`` belongs to one cluster: a restore makes a new cluster with a new one.
_KEY_FILE = re.compile(r"^(?:[a-z0-9][a-z0-9_-]*\.key(?:\.[0-9A-Za-z_-]+\.bak)?|admin\.token)$")
_MEMBER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")
_TRAEFIK_SKIP = {"static.yml"}
# What marks a file of Traefik's that holds a private key: its name (the ACME storage, an uploaded
# certificate's key file) or its content (a PEM private key inlined, as the default certificate's file has
# it; an ACME storage under another name, which keeps the account's key as ``"PrivateKey"``).
_TRAEFIK_SECRET_NAME = re.compile(r"(?:^|/)(?:acme\.json|[^/]+\.key)$")
_PRIVATE_MARKERS = (b"PRIVATE KEY-----", b'"PrivateKey"')


class BackupError(ValueError):
    """The archive or an input is refused; the message says why and never holds a secret."""


class WrongPassphrase(BackupError):
    """The passphrase does not open this archive."""


def archive_name(now: datetime) -> str:
    """The default file name: what it is and when (UTC), with the suffix of what it really is."""
    return f"berth-backup-{now.strftime('%Y%m%dT%H%M%SZ')}{SUFFIX}"


def check_passphrase(passphrase: str) -> str:
    if len(passphrase) < MIN_PASSPHRASE:
        raise BackupError(f"the passphrase must be at least {MIN_PASSPHRASE} characters long")
    return passphrase


def key_files(names: Iterable[str]) -> list[str]:
    """The secret files among the names of the data directory's top level, sorted."""
    return sorted(n for n in names if _KEY_FILE.match(n))


def traefik_files(relative: Iterable[str]) -> list[str]:
    """Of the paths under ``<data>/traefik`` (relative, ``/``-separated), those the archive keeps: everything
    but the static configuration (written at each start) and temporary files (a leading dot)."""
    keep = []
    for rel in relative:
        parts = rel.split("/")
        if rel in _TRAEFIK_SKIP or any(p.startswith(".") for p in parts) or not _MEMBER.match(rel):
            continue
        keep.append(rel)
    return sorted(keep)


def traefik_secret(member: str, data: bytes) -> bool:
    """Whether a Traefik file (by member name, ``traefik/...``) holds a private key and so goes sealed."""
    return bool(_TRAEFIK_SECRET_NAME.search(member)) or any(m in data for m in _PRIVATE_MARKERS)


def split_traefik(files: Mapping[str, bytes]) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Traefik's files by member name, split into those that stay in clear and those that go sealed."""
    clear: dict[str, bytes] = {}
    sealed: dict[str, bytes] = {}
    for name, data in files.items():
        (sealed if traefik_secret(name, data) else clear)[name] = data
    return clear, sealed


def check_member_name(name: str) -> str:
    """A member name that is safe to extract: relative, no ``..``, no leading dot, plain characters."""
    if not _MEMBER.match(name) or ".." in name.split("/"):
        raise BackupError(f"archive refused: unsafe member name {name!r}")
    return name


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- sealing -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kdf:
    """scrypt's parameters, recorded in the manifest so a restore derives the same key."""

    salt: bytes
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P

    @classmethod
    def new(cls, n: int = SCRYPT_N) -> Kdf:
        return cls(secrets.token_bytes(16), n)

    def to_json(self) -> dict[str, Any]:
        return {"name": "scrypt", "salt": self.salt.hex(), "n": self.n, "r": self.r, "p": self.p}

    @classmethod
    def from_json(cls, data: Any) -> Kdf:
        if not isinstance(data, dict) or data.get("name") != "scrypt":
            raise BackupError("archive refused: the manifest names no key derivation this Berth knows")
        try:
            kdf = cls(bytes.fromhex(data["salt"]), int(data["n"]), int(data["r"]), int(data["p"]))
        except (KeyError, TypeError, ValueError):
            raise BackupError("archive refused: the manifest's key derivation is malformed") from None
        if kdf.n < 2**14 or kdf.n > 2**20 or kdf.n & (kdf.n - 1) or not 1 <= kdf.r <= 32 or not 1 <= kdf.p <= 16:
            raise BackupError("archive refused: the manifest's key derivation parameters are out of range")
        return kdf


@dataclass(frozen=True)
class Keys:
    """What a passphrase derives: the AES-256-GCM key of the sealed keys and the manifest's HMAC key."""

    seal: bytes
    mac: bytes

    @classmethod
    def derive(cls, passphrase: str, kdf: Kdf) -> Keys:
        raw = Scrypt(salt=kdf.salt, length=64, n=kdf.n, r=kdf.r, p=kdf.p).derive(passphrase.encode())
        return cls(raw[:32], raw[32:])

    def check(self) -> str:
        """A value that tells a wrong passphrase from an altered archive (it reveals no more than the
        sealed keys themselves do to someone guessing passphrases)."""
        return hmac.new(self.mac, CHECK_TEXT, hashlib.sha256).hexdigest()


def seal_files(files: Mapping[str, bytes], keys: Keys) -> bytes:
    """The secret files as one sealed blob: nonce, then AES-256-GCM of their JSON (contents base64)."""
    payload = json.dumps(
        {name: base64.b64encode(files[name]).decode() for name in sorted(files)}, sort_keys=True
    ).encode()
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(keys.seal).encrypt(nonce, payload, KEYS_AAD)


def open_files(blob: bytes, keys: Keys) -> dict[str, bytes]:
    try:
        payload = AESGCM(keys.seal).decrypt(blob[:_NONCE], blob[_NONCE:], KEYS_AAD)
    except (InvalidTag, ValueError):
        raise BackupError("archive refused: the sealed keys do not open (altered)") from None
    data = json.loads(payload)
    return {key_name(name): base64.b64decode(value) for name, value in data.items()}


def key_name(name: str) -> str:
    """A sealed file's name: a key file of the data directory's top level, or a Traefik file."""
    if name.startswith(TRAEFIK_PREFIX):
        return check_member_name(name)
    if not _KEY_FILE.match(name):
        raise BackupError(f"archive refused: {name!r} is not a key file name")
    return name


# --- manifest ------------------------------------------------------------------------------------------


def canonical(manifest: Mapping[str, Any]) -> bytes:
    """The bytes the manifest's HMAC covers: every field but ``mac``, keys sorted, no spaces."""
    body = {k: v for k, v in manifest.items() if k != "mac"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def build_manifest(
    *,
    berth_version: str,
    created_at: datetime,
    database: str,
    heads: Mapping[str, Mapping[str, str | None]],
    server_version: str,
    key_names: Iterable[str],
    kdf: Kdf,
    keys: Keys,
    members: Mapping[str, tuple[str, int]],
    traefik_modes: Mapping[str, int] | None = None,
    nats: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of an archive whose members (name -> (sha256, size)) are all listed, MAC included.

    ``key_names``: the sealed files; the data directory's are listed under ``keys.files``, Traefik's
    (``traefik/...``) under ``keys.traefik``. ``nats``: the NATS section (``taken_at``, ``streams``)."""
    names = sorted(key_names)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "berth_version": berth_version,
        "created_at": created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "database": {
            "name": database,
            "member": DATABASE_MEMBER,
            "dump_format": "pg_dump custom",
            "server_version": server_version,
            "schemas": {service: dict(info) for service, info in sorted(heads.items())},
        },
        "keys": {
            "member": KEYS_MEMBER,
            "files": [n for n in names if not n.startswith(TRAEFIK_PREFIX)],
            "traefik": [n for n in names if n.startswith(TRAEFIK_PREFIX)],
            "cipher": "AES-256-GCM",
            "kdf": kdf.to_json(),
            "check": keys.check(),
        },
        "members": {name: {"sha256": h, "size": size} for name, (h, size) in sorted(members.items())},
        "traefik_modes": {name: f"{mode & 0o777:04o}" for name, mode in sorted((traefik_modes or {}).items())},
    }
    if nats is not None:
        manifest["nats"] = dict(nats)
    manifest["mac"] = hmac.new(keys.mac, canonical(manifest), hashlib.sha256).hexdigest()
    return manifest


def parse_manifest(data: bytes) -> dict[str, Any]:
    """The manifest's JSON, refused unless it is this format and names only safe members."""
    try:
        manifest = json.loads(data)
    except ValueError:
        raise BackupError("archive refused: manifest.json is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError("archive refused: not a Berth control plane backup")
    if manifest.get("format_version") not in READABLE_VERSIONS:
        raise BackupError(f"archive refused: format version {manifest.get('format_version')!r} is not supported")
    members = manifest.get("members")
    if not isinstance(members, dict) or DATABASE_MEMBER not in members or KEYS_MEMBER not in members:
        raise BackupError("archive refused: the manifest lists no database or no keys")
    for name, info in members.items():
        check_member_name(name)
        if name == MANIFEST or not isinstance(info, dict) or not re.fullmatch(r"[0-9a-f]{64}", str(info.get("sha256"))):
            raise BackupError(f"archive refused: the manifest's entry for {name!r} is malformed")
    traefik_modes(manifest)
    return manifest


def sealed_names(manifest: Mapping[str, Any]) -> list[str]:
    """The files the manifest says are sealed: the data directory's key files and Traefik's (version 2)."""
    keys = manifest.get("keys")
    if not isinstance(keys, dict):
        return []
    names = [*keys.get("files", []), *keys.get("traefik", [])]
    return sorted(str(n) for n in names)


def traefik_modes(manifest: Mapping[str, Any]) -> dict[str, int]:
    """The modes of Traefik's files and folders the manifest records (none in version 1), checked."""
    modes = manifest.get("traefik_modes", {})
    if not isinstance(modes, dict):
        raise BackupError("archive refused: the manifest's traefik_modes is malformed")
    out = {}
    for name, mode in modes.items():
        if not (name + "/").startswith(TRAEFIK_PREFIX) or not re.fullmatch(r"0[0-7]{3}", str(mode)):
            raise BackupError(f"archive refused: the manifest's mode of {name!r} is malformed")
        out[check_member_name(name)] = int(mode, 8)
    return out


def expected_members(manifest: Mapping[str, Any]) -> dict[str, str]:
    """Member name -> the sha256 the manifest promises."""
    return {name: info["sha256"] for name, info in manifest["members"].items()}


def compare_members(expected: Mapping[str, str], found: Mapping[str, str]) -> None:
    """Refuse an archive whose members are not exactly those of its manifest, each with its checksum."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing:
        raise BackupError(f"archive refused: {', '.join(missing)} missing (damaged or tampered)")
    if extra:
        raise BackupError(f"archive refused: {', '.join(extra)} not in the manifest (tampered)")
    for name in sorted(expected):
        if not hmac.compare_digest(expected[name], found[name]):
            raise BackupError(
                f"archive refused: {name} does not match its sha256 in the manifest (damaged or tampered)"
            )


def authenticate(manifest: Mapping[str, Any], passphrase: str) -> Keys:
    """The keys the passphrase derives, once they prove the passphrase right and the manifest unaltered."""
    seal = manifest.get("keys")
    if not isinstance(seal, dict):
        raise BackupError("archive refused: the manifest says nothing of its keys")
    keys = Keys.derive(passphrase, Kdf.from_json(seal.get("kdf")))
    if not hmac.compare_digest(keys.check(), str(seal.get("check", ""))):
        raise WrongPassphrase("wrong passphrase: it does not open this archive")
    mac = hmac.new(keys.mac, canonical(manifest), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac, str(manifest.get("mac", ""))):
        raise BackupError("archive refused: the manifest was altered after the backup was made")
    return keys


# --- the database tools --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgConn:
    """Where a Postgres tool connects; the password goes in its environment, never on its command line."""

    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def from_url(cls, url: str) -> PgConn:
        parts = urlsplit(url)
        if not parts.scheme.startswith("postgresql") or not parts.hostname:
            raise BackupError("the database URL must be postgresql://user:password@host:port/database")
        return cls(
            parts.hostname,
            parts.port or 5432,
            unquote(parts.username or "postgres"),
            unquote(parts.password or ""),
            unquote(parts.path.lstrip("/")) or "postgres",
        )

    def args(self) -> list[str]:
        return [
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--username",
            self.user,
            "--dbname",
            self.database,
            "--no-password",
        ]

    def env(self) -> dict[str, str]:
        return {"PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "10", "PGAPPNAME": "berth-backup"}


def pg_dump_argv(pg_dump: str, conn: PgConn, out: str) -> list[str]:
    """One consistent snapshot of the whole database (every service schema), custom format, uncompressed:
    the archive around it is compressed once."""
    return [pg_dump, *conn.args(), "--format=custom", "--compress=0", "--file", out]


def pg_restore_argv(pg_restore: str, conn: PgConn, dump: str) -> list[str]:
    """Into a database whose roles and empty schemas exist: the schemas are made again from the dump, owned
    by their roles, in one transaction that stops at the first error."""
    return [pg_restore, *conn.args(), "--clean", "--if-exists", "--single-transaction", "--exit-on-error", dump]
