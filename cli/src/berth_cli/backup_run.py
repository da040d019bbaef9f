"""``berth backup`` and ``berth restore`` carried out: the one adapter that lists files, runs the database
tools (:mod:`berth_cli.backup_pg`), snapshots and restores the NATS streams (:mod:`berth_cli.backup_nats`:
before the database is dumped) and reads and writes the archive laid out by :mod:`berth_cli.backup_archive`.

A backup is written to ``<output>.partial`` (mode 0600) and renamed into place once complete. A restore
checks every member against the manifest, the passphrase and the manifest's HMAC before it writes anything
to the data directory; if a later step fails, what it made is removed again (and, with ``--force``, what
it moved aside is put back).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any

from berth_cli import backup_archive as fmt
from berth_cli import backup_nats as nats
from berth_cli import backup_pg as pg
from berth_cli.backup_files import Changes, Verified, restore_files
from berth_cli.datadir import ensure_secret
from berth_cli.layout import DATABASE, Paths

MAX_MANIFEST = 1_000_000
CHUNK = 1 << 20


def berth_version() -> str:
    try:
        return version("berth-cli")
    except PackageNotFoundError:
        return "unknown"


def _hash_file(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o600, int(mtime)
    tar.addfile(info, io.BytesIO(data))


@dataclass
class BackupResult:
    path: Path
    size: int
    members: int
    heads: dict[str, dict[str, str | None]]


def make_backup(
    paths: Paths, output: Path, passphrase: str, env: Mapping[str, str], now: datetime | None = None
) -> BackupResult:
    """Write the archive of this data directory's platform to ``output`` (see the module's docstring)."""
    fmt.check_passphrase(passphrase)
    now = now or datetime.now(UTC)
    if not paths.secret_key.is_file():
        raise fmt.BackupError(f"no secret.key in {paths.root}: not a Berth data directory")
    if output.exists():
        raise fmt.BackupError(f"{output} exists already: give another --output")
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".berth-backup-", dir=output.parent))
    try:
        dump = staging / fmt.DATABASE_MEMBER
        streams: list[nats.StreamSnapshot] = []
        taken_at = None
        with pg.platform_database(paths, env, staging / "postgres.log") as conn:
            heads, server_version = pg.schema_heads(conn)
            with nats.platform_nats(paths, env, staging / "nats.log") as url:
                if url is not None:
                    taken_at = pg.server_now(conn)
                    streams = nats.snapshot_streams(url, staging / "nats")
            pg.run_tool(fmt.pg_dump_argv(str(_pg_bin("pg_dump")), conn, str(dump)), conn, "pg_dump")
        return write_backup(
            paths,
            output,
            passphrase,
            dump,
            database=conn.database,
            heads=heads,
            server_version=server_version,
            now=now,
            streams=streams,
            nats_taken_at=taken_at,
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_backup(
    paths: Paths,
    output: Path,
    passphrase: str,
    dump: Path,
    *,
    database: str,
    heads: dict[str, dict[str, str | None]],
    server_version: str,
    now: datetime,
    kdf: fmt.Kdf | None = None,
    streams: list[nats.StreamSnapshot] | None = None,
    nats_taken_at: str | None = None,
) -> BackupResult:
    """The archive around a database dump already made: the data directory's key files and Traefik's files
    that hold a private key sealed, Traefik's other files in clear, and the NATS streams' snapshots taken at
    ``nats_taken_at`` (no NATS section without it)."""
    partial = output.with_name(output.name + ".partial")
    try:
        secret_files, traefik, sealed_traefik, modes = _data_dir_files(paths)
        kdf = kdf or fmt.Kdf.new()
        keys = fmt.Keys.derive(passphrase, kdf)
        sealed = fmt.seal_files({**secret_files, **sealed_traefik}, keys)
        members = {fmt.DATABASE_MEMBER: _hash_file(dump), fmt.KEYS_MEMBER: (fmt.sha256_hex(sealed), len(sealed))}
        members.update({name: (fmt.sha256_hex(data), len(data)) for name, data in traefik.items()})
        snapshots = {s.member: s.path for s in streams or []}
        members.update({name: _hash_file(path) for name, path in snapshots.items()})
        section = nats.section(streams or [], nats_taken_at) if nats_taken_at is not None else None
        manifest = fmt.build_manifest(
            berth_version=berth_version(),
            created_at=now,
            database=database,
            heads=heads,
            server_version=server_version,
            key_names=[*secret_files, *sealed_traefik],
            kdf=kdf,
            keys=keys,
            members=members,
            traefik_modes=modes,
            nats=section,
        )
        small = {fmt.MANIFEST: json.dumps(manifest, indent=2, sort_keys=True).encode(), fmt.KEYS_MEMBER: sealed}
        _write_archive(partial, small, {fmt.DATABASE_MEMBER: dump}, traefik, now.timestamp(), snapshots)
        os.replace(partial, output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return BackupResult(output, output.stat().st_size, len(members) + 1, heads)


def _data_dir_files(
    paths: Paths,
) -> tuple[dict[str, bytes], dict[str, bytes], dict[str, bytes], dict[str, int]]:
    """The data directory's secret files, Traefik's files by member name (those in clear, those sealed),
    and the modes of Traefik's files and of the folders that hold them."""
    names = fmt.key_files(p.name for p in paths.root.iterdir() if p.is_file())
    secret_files = {name: (paths.root / name).read_bytes() for name in names}
    tdir = paths.root / "traefik"
    rels = [p.relative_to(tdir).as_posix() for p in tdir.rglob("*") if p.is_file()] if tdir.is_dir() else []
    traefik = {fmt.TRAEFIK_PREFIX + rel: (tdir / rel).read_bytes() for rel in fmt.traefik_files(rels)}
    modes: dict[str, int] = {}
    for name in traefik:
        path = paths.root / name
        for p in [path, *path.parents]:
            if not p.is_relative_to(tdir) or p.relative_to(paths.root).as_posix() in modes:
                continue
            modes[p.relative_to(paths.root).as_posix()] = stat.S_IMODE(p.stat().st_mode)
    clear, sealed = fmt.split_traefik(traefik)
    return secret_files, clear, sealed, modes


def _write_archive(
    path: Path,
    small: Mapping[str, bytes],
    dump: Mapping[str, Path],
    traefik: Mapping[str, bytes],
    mtime: float,
    snapshots: Mapping[str, Path],
) -> None:
    """The archive at ``path`` (mode 0600 from its first byte, on disk when this returns): the manifest
    first, then the dump, the sealed keys, Traefik's files and the NATS streams' snapshots."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, fmt.MANIFEST, small[fmt.MANIFEST], mtime)
            for name, file in dump.items():
                _add_file(tar, name, file, mtime)
            _add_bytes(tar, fmt.KEYS_MEMBER, small[fmt.KEYS_MEMBER], mtime)
            for name, data in sorted(traefik.items()):
                _add_bytes(tar, name, data, mtime)
            for name, file in sorted(snapshots.items()):
                _add_file(tar, name, file, mtime)
        raw.flush()
        os.fsync(raw.fileno())


def _add_file(tar: tarfile.TarFile, name: str, file: Path, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = file.stat().st_size, 0o600, int(mtime)
    with file.open("rb") as f:
        tar.addfile(info, f)


def _pg_bin(name: str) -> Path:
    from berth_cli import components

    return components.pg_bin(name)


# --- restore -------------------------------------------------------------------------------------------


def _copy(src: IO[bytes], dst: Path) -> str:
    h = hashlib.sha256()
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        while chunk := src.read(CHUNK):
            h.update(chunk)
            out.write(chunk)
    return h.hexdigest()


def verify_archive(archive: Path, passphrase: str, staging: Path) -> Verified:
    """Unpack ``archive`` into ``staging``, checking each member against the manifest (its first member:
    nothing it does not list, or lists with another size, is unpacked), then the passphrase and the
    manifest's HMAC, then open the sealed keys."""
    found: dict[str, str] = {}
    try:
        tar = tarfile.open(archive, mode="r:gz")
    except (OSError, tarfile.TarError) as exc:
        raise fmt.BackupError(f"archive refused: not a readable .tar.gz ({type(exc).__name__})") from None
    try:
        with tar:
            first = tar.next()
            if first is None or first.name != fmt.MANIFEST or not first.isfile():
                raise fmt.BackupError("archive refused: it does not begin with manifest.json")
            if first.size > MAX_MANIFEST:
                raise fmt.BackupError("archive refused: manifest.json is too large")
            manifest = fmt.parse_manifest(_read(tar, first))
            nats.nats_streams(manifest)
            sizes = {name: info.get("size") for name, info in manifest["members"].items()}
            for info in tar:  # from the first member again
                if info is first:
                    continue
                name = fmt.check_member_name(info.name)
                if name not in sizes:
                    raise fmt.BackupError(f"archive refused: {name} not in the manifest (tampered)")
                if not info.isfile() or name in found or info.size != sizes[name]:
                    raise fmt.BackupError(f"archive refused: {name} is not the file the manifest lists (tampered)")
                f = tar.extractfile(info)
                assert f is not None
                found[name] = _copy(f, staging / "members" / name)
    except fmt.BackupError:
        raise
    except (OSError, EOFError, tarfile.TarError, zlib.error) as exc:
        raise fmt.BackupError(f"archive refused: it is damaged or truncated ({type(exc).__name__})") from None
    fmt.compare_members(fmt.expected_members(manifest), found)
    keys = fmt.authenticate(manifest, passphrase)
    opened = fmt.open_files((staging / "members" / fmt.KEYS_MEMBER).read_bytes(), keys)
    if sorted(opened) != fmt.sealed_names(manifest) or "secret.key" not in opened:
        raise fmt.BackupError("archive refused: the sealed keys are not those the manifest lists")
    return Verified(manifest, staging, opened)


def _read(tar: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    f = tar.extractfile(info)
    assert f is not None
    return f.read()


def _move_aside(paths: Paths, cluster: Path | None, stamp: str, changes: Changes) -> Path:
    """The data directory's cluster, key files and Traefik files moved to ``replaced-<stamp>`` places."""
    aside_dir = paths.root / f"replaced-{stamp}"
    aside_dir.mkdir(mode=0o700)
    if cluster is not None:
        cluster_aside = cluster.with_name(f"{cluster.name}.replaced-{stamp}")
        os.replace(cluster, cluster_aside)
        changes.moved.append((cluster, cluster_aside))
    for name in [*_occupied(paths), paths.pg_password.name, "traefik", nats.store(paths).name]:
        src = paths.root / name
        if src.exists():
            os.replace(src, aside_dir / name)
            changes.moved.append((src, aside_dir / name))
    return aside_dir


def _occupied(paths: Paths) -> list[str]:
    """The key files the data directory holds already."""
    return fmt.key_files(p.name for p in paths.root.iterdir() if p.is_file()) if paths.root.is_dir() else []


@dataclass
class RestoreResult:
    heads: dict[str, Any]
    keys: list[str]
    traefik_files: int
    replaced: Path | None
    streams: list[str] = field(default_factory=list)


def restore_backup(paths: Paths, archive: Path, passphrase: str, force: bool = False) -> RestoreResult:
    """Rebuild the data directory ``paths`` from ``archive`` (see the module's docstring)."""
    from berth_cli import dataplane, platform

    if platform.supervisor_pid(paths) is not None:
        raise fmt.BackupError(f"a platform is running on {paths.root}: stop it first (berth down)")
    if (traefik := dataplane.serving(paths.root)) is not None:  # it watches the Traefik files a restore replaces
        raise fmt.BackupError(
            f"traefik (pid {traefik}) still serves from {paths.root}: stop it first (berth down --all)"
        )
    cluster = pg.existing_cluster(paths)
    held = f"a database ({cluster})" if cluster is not None else ", ".join(_occupied(paths))
    if held and not force:
        raise fmt.BackupError(
            f"{paths.root} already holds {held}; restore onto a new data directory, or give --force to "
            "replace it (the old one is kept aside)"
        )
    if not archive.is_file():
        raise fmt.BackupError(f"no such archive: {archive}")
    parent = paths.root.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".berth-restore-", dir=parent))
    existed = paths.root.is_dir()
    changes = Changes(paths.root, {entry.name for entry in paths.root.iterdir()} if existed else None)
    try:
        verified = verify_archive(archive, passphrase, staging)
        if not existed:
            paths.root.mkdir()  # as `berth up` makes it: the cluster inside it when Postgres's user can reach it
        replaced = None
        if held:
            replaced = _move_aside(paths, cluster, datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"), changes)
        heads = _restore_database(paths, verified, changes)
        traefik = restore_files(paths, verified, changes)
        streams = restore_nats(paths, verified, changes)
        keys = sorted(n for n in verified.keys if not n.startswith(fmt.TRAEFIK_PREFIX))
        return RestoreResult(heads, keys, traefik, replaced, streams)
    except BaseException:
        changes.undo()
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _restore_database(paths: Paths, verified: Verified, changes: Changes) -> dict[str, Any]:
    """A new cluster in the data directory, its roles, and the dump restored into its database (the
    platform's database, whatever the database's name where the backup was taken)."""
    if not paths.pg_password.exists():
        changes.made.append(paths.pg_password)
    password = ensure_secret(paths.pg_password, 24)
    for candidate in pg.cluster_places(paths):  # initdb makes one of them: removed if anything fails
        if not candidate.exists():
            changes.made.append(candidate)
    secret = verified.keys["secret.key"].decode().strip()
    cluster = pg.start_cluster(paths, password, verified.staging / "postgres.log")
    try:
        pg.prepare_database(cluster.conn, DATABASE, secret)
        conn = replace(cluster.conn, database=DATABASE)
        dump = str(verified.member(fmt.DATABASE_MEMBER))
        pg.run_tool(fmt.pg_restore_argv(str(_pg_bin("pg_restore")), conn, dump), conn, "pg_restore")
        heads, _ = pg.schema_heads(conn)
        taken_at = (verified.manifest.get("nats") or {}).get("taken_at")
        if taken_at:
            pg.republish_since(conn, str(taken_at))
    finally:
        pg.stop(cluster)
    expected = verified.manifest["database"]["schemas"]
    if heads != expected:
        raise fmt.BackupError(f"the restored schemas are not those of the archive: {heads} != {expected}")
    return heads


def restore_nats(paths: Paths, verified: Verified, changes: Changes) -> list[str]:
    """The NATS streams of the archive given back to a server on the data directory's new store."""
    entries = nats.nats_streams(verified.manifest)
    if not entries:
        return []
    target = nats.store(paths)
    if target.exists():
        raise fmt.BackupError(f"{target} exists already: the NATS streams are restored onto a new store only")
    changes.made.append(target)
    with nats.nats_on_store(paths, verified.staging / "nats.log") as url:
        return nats.restore_streams(url, [(e, verified.member(e["member"])) for e in entries])
