"""`berth backup` / `berth restore`: the archive's pure parts exactly, then a platform backed up while it
runs, restored onto a new data directory and found again (projects, applications, secrets that still open,
and a command that was pending at backup time, its consumer paused, carried out exactly once);
a tampered archive, a wrong passphrase and a restore failing midway leave nothing written."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import io
import json
import os
import signal
import tarfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import nats
import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy

from berth_cli import backup_archive as fmt
from berth_cli import nats_auth
from berth_cli.backup_pg import existing_cluster
from berth_cli.backup_run import Changes, restore_backup
from berth_cli.layout import ALL_IN_ONE, Paths
from berth_common.bus import Bus
from berth_common.catalogue import ApplyRoutes
from tests.e2e.conftest import make_platform, mentioning

PASSPHRASE = "correct horse battery staple"
APP_SECRET = "s3cret-value-9f41c2"
REGISTRY_PASSWORD = "registry-pw-77ab31"
FAST = 2**14  # scrypt's smallest accepted cost: the pure tests stay fast
PENDING_ROUTE = "pending-at-backup"  # a cmd.route.apply no proxy-sync took before the backup
PENDING_HOST = "pending.backup.test"


# --- the pure parts ------------------------------------------------------------------------------------


def test_the_archive_is_named_for_what_it_is_and_when():
    assert fmt.archive_name(datetime(2026, 12, 5, 2, 3, 4, tzinfo=UTC)) == "berth-backup-20261205T020304Z.tar.gz"


def test_a_short_passphrase_is_refused():
    with pytest.raises(fmt.BackupError, match="at least 12 characters"):
        fmt.check_passphrase("short-11chr")
    assert fmt.check_passphrase("twelve-chars") == "twelve-chars"


def test_the_secret_files_and_the_traefik_files_kept():
    top = [
        "secret.key",
        "api-secrets.key",
        "api-secrets.key.20261201T000000Z.bak",
        "admin.token",
        "postgres.password",
        "supervisor.json",
        "supervisor.pid",
        ".secret.key.tmp",
        "notes.txt",
    ]
    assert fmt.key_files(top) == [
        "admin.token",
        "api-secrets.key",
        "api-secrets.key.20261201T000000Z.bak",
        "secret.key",
    ]
    traefik = [
        "static.yml",
        "dynamic/000-berth-default-cert.yml",
        "dynamic/000-berth-sentinel.yml",
        "dynamic/web-shop.yml",
        "dynamic/.tmp-abc",
        "acme.json",
        "dynamic/../x",
    ]
    assert fmt.traefik_files(traefik) == [
        "acme.json",
        "dynamic/000-berth-default-cert.yml",
        "dynamic/000-berth-sentinel.yml",
        "dynamic/web-shop.yml",
    ]


def test_the_tools_get_argv_only_and_the_password_in_their_environment():
    conn = fmt.PgConn.from_url("postgresql+asyncpg://postgres:p%40ss%2Fw@127.0.0.1:5433/berth")
    assert conn == fmt.PgConn("127.0.0.1", 5433, "postgres", "p@ss/w", "berth")
    common = ["--host", "127.0.0.1", "--port", "5433", "--username", "postgres", "--dbname", "berth", "--no-password"]
    assert fmt.pg_dump_argv("/pg/bin/pg_dump", conn, "/tmp/x/database.dump") == [
        "/pg/bin/pg_dump",
        *common,
        "--format=custom",
        "--compress=0",
        "--file",
        "/tmp/x/database.dump",
    ]
    assert fmt.pg_restore_argv("/pg/bin/pg_restore", conn, "/s/database.dump") == [
        "/pg/bin/pg_restore",
        *common,
        "--clean",
        "--if-exists",
        "--single-transaction",
        "--exit-on-error",
        "/s/database.dump",
    ]
    assert conn.env() == {"PGPASSWORD": "p@ss/w", "PGCONNECT_TIMEOUT": "10", "PGAPPNAME": "berth-backup"}
    with pytest.raises(fmt.BackupError):
        fmt.PgConn.from_url("mysql://root@db/x")


def _manifest(passphrase: str = PASSPHRASE) -> tuple[dict, bytes]:
    kdf = fmt.Kdf.new(FAST)
    keys = fmt.Keys.derive(passphrase, kdf)
    sealed = fmt.seal_files({"secret.key": b"the-key\n", "admin.token": b"tok\n"}, keys)
    manifest = fmt.build_manifest(
        berth_version="0.1.0",
        created_at=datetime(2026, 12, 5, tzinfo=UTC),
        database="berth",
        heads={"api": {"schema": "api", "head": "api_0014"}},
        server_version="18.1",
        key_names=["secret.key", "admin.token"],
        kdf=kdf,
        keys=keys,
        members={"database.dump": ("a" * 64, 10), "keys.sealed": (fmt.sha256_hex(sealed), len(sealed))},
    )
    return manifest, sealed


def test_the_manifest_opens_with_the_passphrase_only_and_holds_no_key():
    manifest, sealed = _manifest()
    assert manifest["database"]["schemas"] == {"api": {"schema": "api", "head": "api_0014"}}
    assert manifest["keys"]["files"] == ["admin.token", "secret.key"]
    assert manifest["members"]["keys.sealed"]["sha256"] == fmt.sha256_hex(sealed)
    assert b"the-key" not in sealed and b"the-key" not in json.dumps(manifest).encode()
    parsed = fmt.parse_manifest(json.dumps(manifest).encode())
    keys = fmt.authenticate(parsed, PASSPHRASE)
    assert fmt.open_files(sealed, keys) == {"secret.key": b"the-key\n", "admin.token": b"tok\n"}
    with pytest.raises(fmt.WrongPassphrase, match="wrong passphrase"):
        fmt.authenticate(parsed, PASSPHRASE + "!")
    altered = json.loads(json.dumps(manifest))
    altered["members"]["database.dump"]["sha256"] = "b" * 64  # a member changed with its checksum
    with pytest.raises(fmt.BackupError, match="manifest was altered"):
        fmt.authenticate(altered, PASSPHRASE)
    with pytest.raises(fmt.BackupError, match="do not open"):
        fmt.open_files(sealed[:-1] + bytes([sealed[-1] ^ 1]), keys)


def test_members_must_be_exactly_those_of_the_manifest():
    expected = {"database.dump": "a" * 64, "keys.sealed": "b" * 64}
    fmt.compare_members(expected, dict(expected))
    with pytest.raises(fmt.BackupError, match=r"keys\.sealed missing"):
        fmt.compare_members(expected, {"database.dump": "a" * 64})
    with pytest.raises(fmt.BackupError, match="evil not in the manifest"):
        fmt.compare_members(expected, {**expected, "evil": "c" * 64})
    with pytest.raises(fmt.BackupError, match=r"database\.dump does not match its sha256"):
        fmt.compare_members(expected, {**expected, "database.dump": "c" * 64})


@pytest.mark.parametrize("name", ["../etc/passwd", "/etc/passwd", "traefik/../../x", ".hidden", "a//b"])
def test_an_unsafe_member_name_is_refused(name):
    manifest, _ = _manifest()
    manifest["members"][name] = {"sha256": "a" * 64, "size": 1}
    with pytest.raises(fmt.BackupError, match="unsafe member name"):
        fmt.parse_manifest(json.dumps(manifest).encode())


def test_key_derivation_parameters_out_of_range_are_refused():
    good = fmt.Kdf.new(FAST).to_json()
    assert fmt.Kdf.from_json(good).n == FAST
    for bad in ({**good, "n": 2**30}, {**good, "n": 3000}, {**good, "name": "md5"}, {"name": "scrypt"}):
        with pytest.raises(fmt.BackupError):
            fmt.Kdf.from_json(bad)


def test_a_failed_restore_removes_what_it_made_and_puts_back_what_it_moved(tmp_path: Path):
    root = tmp_path / "data"
    (root / "traefik").mkdir(parents=True)
    (root / "secret.key").write_text("old")
    (root / "keep.txt").write_text("mine")
    outside = tmp_path / "cluster"  # a cluster in the system home, outside the data directory
    changes = Changes(root, {p.name for p in root.iterdir()})
    aside = root / "replaced-1"
    aside.mkdir()
    for name in ("secret.key", "traefik"):
        os.replace(root / name, aside / name)
        changes.moved.append((root / name, aside / name))
    (root / "secret.key").write_text("new")
    changes.made += [root / "secret.key", outside]
    outside.mkdir()
    (root / "pgsoft").mkdir()  # made by a step that does not say so
    changes.undo()
    assert sorted(p.name for p in root.iterdir()) == ["keep.txt", "secret.key", "traefik"]
    assert (root / "secret.key").read_text() == "old" and not outside.exists()
    fresh = Changes(tmp_path / "new", None)
    (tmp_path / "new").mkdir()
    fresh.undo()
    assert not (tmp_path / "new").exists()


def test_a_data_directory_holding_keys_is_refused_without_force(tmp_path: Path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "secret.key").write_text("k")
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(b"")
    with pytest.raises(fmt.BackupError, match=r"already holds secret\.key"):
        restore_backup(Paths(root), archive, PASSPHRASE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "data"]


# --- end to end ----------------------------------------------------------------------------------------


def _client(platform) -> httpx.Client:
    token = platform.paths.admin_token.read_text().strip()
    return httpx.Client(
        base_url=f"http://127.0.0.1:{platform.ports['api']}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def _write_archive(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _nats_url(platform, identity: str) -> str:
    password = nats_auth.ensure_passwords(platform.paths.root)[identity]
    return nats_auth.with_credentials(f"nats://127.0.0.1:{platform.ports['nats']}", identity, password)


async def _publish_pending_route(platform) -> None:
    """``cmd.route.apply`` as the scheduler publishes it, for proxy-sync to carry out."""
    password = nats_auth.ensure_passwords(platform.paths.root)["scheduler"]
    bus = Bus("scheduler", f"nats://127.0.0.1:{platform.ports['nats']}", user="scheduler", password=password)
    await bus.connect(declare=False)
    try:
        cmd = ApplyRoutes(route_id=PENDING_ROUTE, hosts=[PENDING_HOST], upstreams=["http://127.0.0.1:9"], generation=1)
        await bus.publish(cmd)
    finally:
        await bus.close()


async def _route_events(platform) -> list[tuple[str, str]]:
    """Every ``evt.route.*`` (type, envelope id) of the pending route kept in the event stream (as admin)."""
    nc = await nats.connect(_nats_url(platform, nats_auth.ADMIN), inbox_prefix=f"_INBOX.{nats_auth.ADMIN}")
    found = []
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(
            "evt.route.>", stream="BERTH_EVT", config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        )
        while True:
            try:
                msgs = await sub.fetch(200, timeout=1.5)
            except TimeoutError:
                break
            for msg in msgs:
                env = json.loads(msg.data)
                if env["data"].get("route_id") == PENDING_ROUTE:
                    found.append((str(env["type"]), str(env["id"])))
                await msg.ack()
        await sub.unsubscribe()
    finally:
        await nc.close()
    return found


def _broken_archive(good: Path, path: Path) -> Path:
    """An authentic archive (made with the passphrase) whose dump does not restore."""
    members = _members(good)
    manifest = json.loads(members["manifest.json"])
    broken = b"PGDMP" + b"\x00" * 64
    keys = fmt.authenticate(manifest, PASSPHRASE)
    manifest["members"]["database.dump"] = {"sha256": fmt.sha256_hex(broken), "size": len(broken)}
    manifest["mac"] = hmac.new(keys.mac, fmt.canonical(manifest), hashlib.sha256).hexdigest()
    _write_archive(path, {**members, "manifest.json": json.dumps(manifest).encode(), "database.dump": broken})
    return path


@pytest.fixture(scope="module")
def backed_up(tmp_root: Path):
    """A platform with a project, an application with a secret variable and a registry credential, backed
    up while it runs, then stopped."""
    gen = make_platform(tmp_root / "cp-source")
    source = next(gen)
    source.up("--all-in-one")
    with _client(source) as api:
        r = api.post("/v1/projects", json={"name": "alpha"})
        assert r.status_code == 201, r.text
        env_id = r.json()["environments"][0]["id"]
        body = {
            "name": "shop",
            "source": {"kind": "image", "image": "registry.example.com:5000/acme/shop:1.0"},
            "services": [{"kind": "web", "name": "web", "port": 8080, "replicas": 1, "health_path": "/"}],
        }
        r = api.post(f"/v1/environments/{env_id}/applications", json=body)
        assert r.status_code == 201, r.text
        app_id = r.json()["id"]
        r = api.post(
            f"/v1/applications/{app_id}/variables/import", json={"content": f"API_KEY={APP_SECRET}\n", "secret": True}
        )
        assert r.status_code == 200, r.text
        registry = {"name": "private", "host": "registry.example.com", "username": "u", "password": REGISTRY_PASSWORD}
        r = api.post("/v1/registries", json=registry)
        assert r.status_code == 201, r.text
    pfile = tmp_root / "cp-passphrase"
    pfile.write_text(PASSPHRASE + "\n")
    archive = tmp_root / "cp-out" / "control-plane.tar.gz"
    # a command pending at backup time: its consumer (proxy-sync, in the paused services' process) has not
    # carried it out; the backup is taken while the platform's NATS and database run
    services = source.state()["children"][ALL_IN_ONE]["pid"]
    os.kill(services, signal.SIGSTOP)
    try:
        asyncio.run(_publish_pending_route(source))
        proc = source.berth("backup", "--output", str(archive), "--passphrase-file", str(pfile))
    finally:
        os.kill(services, signal.SIGCONT)
    assert proc.returncode == 0, proc.stderr
    secrets = {
        name: (source.paths.root / name).read_text().strip()
        for name in ("secret.key", "api-secrets.key", "admin.token")
    }
    source.down()
    yield {"source": source, "archive": archive, "pfile": pfile, "app_id": app_id, "out": proc, "secrets": secrets}
    gen.close()


@pytest.mark.slow
def test_the_archive_is_a_gzip_tar_of_the_database_sealed_keys_and_traefik_files(backed_up):
    archive = backed_up["archive"]
    raw = archive.read_bytes()
    assert raw[:2] == b"\x1f\x8b"  # what .tar.gz says
    assert archive.stat().st_mode & 0o077 == 0
    members = _members(archive)
    assert next(iter(members)) == "manifest.json"
    manifest = json.loads(members["manifest.json"])
    assert set(members) == {"manifest.json", *manifest["members"]}
    assert {"database.dump", "keys.sealed"} <= set(members)
    # the default certificate's file inlines its private key: it is sealed with the keys, not in clear
    assert "traefik/dynamic/000-berth-default-cert.yml" in manifest["keys"]["traefik"]
    assert not [name for name, data in members.items() if name != "keys.sealed" and b"PRIVATE KEY" in data]
    for name, info in manifest["members"].items():
        assert fmt.sha256_hex(members[name]) == info["sha256"], name
    assert members["database.dump"][:5] == b"PGDMP"
    schemas = manifest["database"]["schemas"]
    assert set(schemas) == {"api", "builder", "scheduler", "proxy-sync", "metrics", "notifier"}
    assert all(s["head"] for s in schemas.values()), schemas
    assert manifest["keys"]["files"] == ["admin.token", "api-secrets.key", "secret.key"]
    # the NATS streams, snapshotted while the platform ran, each in its member
    streams = {s["name"]: s for s in manifest["nats"]["streams"]}
    assert set(streams) == {"BERTH_CMD", "BERTH_EVT", "BERTH_LOG", "BERTH_DLQ"}
    assert all(members[f"nats/{name}.snapshot"] for name in streams)
    assert streams["BERTH_CMD"]["config"]["retention"] == "workqueue"
    # no key, passphrase or secret value in the clear: not in the archive, not in what the command printed
    plain = gzip.decompress(raw)
    out = backed_up["out"].stdout + backed_up["out"].stderr
    for secret in [PASSPHRASE, APP_SECRET, REGISTRY_PASSWORD, *backed_up["secrets"].values()]:
        assert secret.encode() not in plain
        assert secret not in out
    assert str(archive) in out


@pytest.mark.slow
def test_a_stopped_platform_is_backed_up_from_its_cluster_started_for_the_time_of_it(backed_up, tmp_root: Path):
    source = backed_up["source"]
    out = tmp_root / "cp-out" / "stopped.tar.gz"
    proc = source.berth("backup", "--output", str(out), "--passphrase-file", str(backed_up["pfile"]))
    assert proc.returncode == 0, proc.stderr
    first = json.loads(_members(backed_up["archive"])["manifest.json"])
    second = json.loads(_members(out)["manifest.json"])
    assert second["database"]["schemas"] == first["database"]["schemas"]
    assert second["keys"]["files"] == first["keys"]["files"]
    # the Postgres it started is stopped again (Traefik, the data plane, serves on after `berth down`)
    assert [p for p in mentioning(source.paths.root) if p.name() != "traefik"] == []
    assert not list(out.parent.glob(".berth-backup-*")) and not list(out.parent.glob("*.partial"))


@pytest.mark.slow
def test_a_short_passphrase_is_refused_before_anything_is_written(backed_up, tmp_root: Path):
    short = tmp_root / "cp-short"
    short.write_text("too-short\n")
    out = tmp_root / "cp-short-out" / "x.tar.gz"
    proc = backed_up["source"].berth("backup", "--output", str(out), "--passphrase-file", str(short))
    assert proc.returncode == 1 and "at least 12 characters" in proc.stderr
    assert not out.parent.exists()


@pytest.mark.slow
def test_restored_onto_a_new_data_directory_every_project_application_and_secret_is_found(backed_up, tmp_root):
    gen = make_platform(tmp_root / "cp-restored")
    target = next(gen)
    try:
        proc = target.berth("restore", str(backed_up["archive"]), "--passphrase-file", str(backed_up["pfile"]))
        assert proc.returncode == 0, proc.stderr
        assert "4 NATS streams" in proc.stdout and (target.paths.root / "nats").is_dir()
        for secret in [PASSPHRASE, *backed_up["secrets"].values()]:
            assert secret not in proc.stdout + proc.stderr
        for name, value in backed_up["secrets"].items():
            path = target.paths.root / name
            assert path.read_text().strip() == value and path.stat().st_mode & 0o077 == 0, name
        assert (target.paths.traefik_dynamic / "000-berth-default-cert.yml").is_file()
        first_cluster = existing_cluster(target.paths)
        assert first_cluster is not None
        # the data directory now holds a database: a restore is refused, unless forced (the old one kept aside)
        restore = ("restore", str(backed_up["archive"]), "--passphrase-file", str(backed_up["pfile"]))
        again = target.berth(*restore)
        assert again.returncode == 1 and "already holds a database" in again.stderr
        # a forced restore that fails puts everything back as it was
        before = sorted(p.name for p in target.paths.root.iterdir())
        broken = _broken_archive(backed_up["archive"], tmp_root / "cp-broken-force.tar.gz")
        failed = target.berth("restore", str(broken), "--passphrase-file", str(backed_up["pfile"]), "--force")
        assert failed.returncode == 1 and "pg_restore failed" in failed.stderr, failed.stderr
        assert sorted(p.name for p in target.paths.root.iterdir()) == before
        assert existing_cluster(target.paths) == first_cluster
        assert not list(first_cluster.parent.glob("*.replaced-*"))
        assert (target.paths.root / "secret.key").read_text().strip() == backed_up["secrets"]["secret.key"]
        forced = target.berth(*restore, "--force")
        assert forced.returncode == 0, forced.stderr
        aside = list(target.paths.root.glob("replaced-*"))
        assert len(aside) == 1 and (aside[0] / "secret.key").is_file()
        cluster = existing_cluster(target.paths)
        assert cluster is not None and list(cluster.parent.glob(f"{cluster.name}.replaced-*/PG_VERSION"))
        # one start serves both restores: the forced one rebuilt the data directory from the same archive, in
        # the same way as the first (a new cluster, the keys, the Traefik files), and what it made is found
        for name, value in backed_up["secrets"].items():
            path = target.paths.root / name
            assert path.read_text().strip() == value and path.stat().st_mode & 0o077 == 0, name
        assert (target.paths.traefik_dynamic / "000-berth-default-cert.yml").is_file()
        target.up("--all-in-one")
        # the command pending at backup time is carried out by the restored platform, exactly once
        deadline, applied = time.monotonic() + 90, []
        while time.monotonic() < deadline and not applied:
            applied = [e for e in asyncio.run(_route_events(target)) if e[0] == "evt.route.applied"]
            time.sleep(1)
        assert len(applied) == 1, asyncio.run(_route_events(target))
        assert any(PENDING_HOST in f.read_text() for f in target.paths.traefik_dynamic.glob("*.yml"))
        time.sleep(3)  # nothing more comes of it
        assert [e for e in asyncio.run(_route_events(target)) if e[0] == "evt.route.applied"] == applied
        with _client(target) as api:
            assert [p["name"] for p in api.get("/v1/projects").json()] == ["alpha"]
            assert [a["id"] for a in api.get("/v1/applications").json()] == [backed_up["app_id"]]
            assert [r["name"] for r in api.get("/v1/registries").json()] == ["private"]
            export = f"/v1/applications/{backed_up['app_id']}/variables/export"
            assert f"API_KEY={APP_SECRET}" in api.get(export, params={"reveal_secrets": "true"}).text
            # every sealed value (the registry password included) opens with the restored key: rotation
            # re-seals them all, or fails naming the one that does not open
            rotated = target.berth("secrets", "rotate-key")
            assert rotated.returncode == 0, rotated.stderr
            assert f"API_KEY={APP_SECRET}" in api.get(export, params={"reveal_secrets": "true"}).text
        running = target.berth(*restore)
        assert running.returncode == 1 and "a platform is running" in running.stderr
        target.down()
    finally:
        gen.close()


@pytest.mark.slow
def test_a_tampered_archive_is_refused_and_nothing_is_written(backed_up, tmp_root: Path):
    members = _members(backed_up["archive"])
    dump = bytearray(members["database.dump"])
    dump[len(dump) // 2] ^= 0xFF
    tampered = tmp_root / "cp-tampered.tar.gz"
    _write_archive(tampered, {**members, "database.dump": bytes(dump)})
    gen = make_platform(tmp_root / "cp-tampered")
    target = next(gen)
    try:
        proc = target.berth("restore", str(tampered), "--passphrase-file", str(backed_up["pfile"]))
        assert proc.returncode == 1
        assert "database.dump does not match its sha256 in the manifest" in proc.stderr
        assert not target.paths.root.exists()
        # the checksum changed with the member: the manifest's HMAC tells
        manifest = json.loads(members["manifest.json"])
        manifest["members"]["database.dump"]["sha256"] = fmt.sha256_hex(bytes(dump))
        _write_archive(
            tampered, {**members, "manifest.json": json.dumps(manifest).encode(), "database.dump": bytes(dump)}
        )
        proc = target.berth("restore", str(tampered), "--passphrase-file", str(backed_up["pfile"]))
        assert proc.returncode == 1 and "manifest was altered" in proc.stderr
        assert not target.paths.root.exists()
        # a member the manifest does not list is not even unpacked
        _write_archive(tampered, {**members, "traefik/dynamic/evil.yml": b"http: {}\n"})
        proc = target.berth("restore", str(tampered), "--passphrase-file", str(backed_up["pfile"]))
        assert proc.returncode == 1 and "traefik/dynamic/evil.yml not in the manifest" in proc.stderr, proc.stderr
        assert not target.paths.root.exists()
        # cut short (a copy that did not finish)
        raw = backed_up["archive"].read_bytes()
        tampered.write_bytes(raw[: len(raw) * 2 // 3])
        proc = target.berth("restore", str(tampered), "--passphrase-file", str(backed_up["pfile"]))
        assert proc.returncode == 1 and "damaged or truncated" in proc.stderr, proc.stderr
        assert not target.paths.root.exists()
    finally:
        gen.close()
    assert not list(tmp_root.glob(".berth-restore-*"))


@pytest.mark.slow
def test_a_wrong_passphrase_is_a_clear_error_and_nothing_is_written(backed_up, tmp_root: Path):
    wrong = tmp_root / "cp-wrong"
    wrong.write_text("not the right passphrase\n")
    gen = make_platform(tmp_root / "cp-wrong-dir")
    target = next(gen)
    try:
        target.paths.root.mkdir()
        proc = target.berth("restore", str(backed_up["archive"]), "--passphrase-file", str(wrong))
        assert proc.returncode == 1
        assert proc.stderr.strip() == "berth restore: wrong passphrase: it does not open this archive"
        assert list(target.paths.root.iterdir()) == []
    finally:
        gen.close()


@pytest.mark.slow
def test_a_restore_that_fails_midway_leaves_nothing_behind(backed_up, tmp_root: Path):
    """An archive that is authentic (made with the passphrase) but whose dump does not restore: the new
    cluster, the keys and the files restore made are removed again."""
    archive = _broken_archive(backed_up["archive"], tmp_root / "cp-broken.tar.gz")
    gen = make_platform(tmp_root / "cp-broken")
    target = next(gen)
    try:
        target.paths.root.mkdir()
        (target.paths.root / "keep.txt").write_text("mine")
        proc = target.berth("restore", str(archive), "--passphrase-file", str(backed_up["pfile"]))
        assert proc.returncode == 1 and "pg_restore failed" in proc.stderr, proc.stderr
        assert PASSPHRASE not in proc.stderr
        assert sorted(p.name for p in target.paths.root.iterdir()) == ["keep.txt"]
    finally:
        gen.close()
