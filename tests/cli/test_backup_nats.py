"""`berth backup` / `berth restore` carry the NATS JetStream store: every stream snapshotted through the
JetStream API while the server runs, restored onto a new data directory's store with its consumers, so a
command pending at backup time (delivered but not acknowledged, or not delivered yet) is delivered after
the restore and an acknowledged one is not. Outbox rows published after the snapshot are published again.
Archive-level: the dump is a file given as made; the NATS servers are real."""

from __future__ import annotations

import asyncio
import json
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from berth_cli import backup_archive as fmt
from berth_cli import backup_nats, nats_auth
from berth_cli import backup_pg as pg
from berth_cli.backup_run import Changes, restore_nats, verify_archive, write_backup
from berth_cli.layout import Paths
from berth_common.bus.consumer import durable_name
from berth_common.bus.streams import CMD_STREAM, declare_streams, default_streams

PASSPHRASE = "correct horse battery staple"
NOW = datetime(2026, 12, 5, 9, 0, 0, tzinfo=UTC)
ACK_WAIT_S = 1.0


def _data_dir(path: Path) -> Paths:
    path.mkdir(mode=0o700)
    (path / "secret.key").write_text("the-platform-key\n")
    return Paths(path)


async def _connect_as(url: str, root: Path, identity: str) -> nats.aio.client.Client:
    """A connection to the server at ``url`` (the admin's) as the data dir's ``identity``."""
    password = nats_auth.ensure_passwords(root)[identity]
    plain = nats_auth.without_credentials(url)
    return await nats.connect(nats_auth.with_credentials(plain, identity, password), inbox_prefix=f"_INBOX.{identity}")


DURABLE = durable_name("scheduler", "cmd.database.run")


async def _busy_platform(url: str, root: Path) -> None:
    """The streams as the services declare them; the scheduler's consumer took three commands (the api's)
    and acknowledged one of them (one more was never delivered); two events. Each as its own identity."""
    api, nc = await _connect_as(url, root, "api"), await _connect_as(url, root, "scheduler")
    js = nc.jetstream()
    await declare_streams(js, default_streams())
    config = ConsumerConfig(
        name=DURABLE,
        durable_name=DURABLE,
        filter_subject="cmd.database.run",
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ACK_WAIT_S,
    )
    await js.add_consumer(CMD_STREAM, config)
    for i in range(4):
        await api.jetstream().publish(
            "cmd.database.run", json.dumps({"n": i}).encode(), headers={"Nats-Msg-Id": f"cmd-{i}"}
        )
    for i in range(2):
        await js.publish("evt.database.changed", json.dumps({"n": i}).encode())
    sub = await js.pull_subscribe_bind(DURABLE, CMD_STREAM)
    taken = await sub.fetch(3, timeout=5)
    await taken[0].ack_sync()
    await nc.close()
    await api.close()


async def _after_restore(url: str, root: Path) -> dict:
    admin = await backup_nats._connect(url)
    streams = await backup_nats._names(admin)
    await admin.close()
    nc = await _connect_as(url, root, "scheduler")
    js = nc.jetstream()
    try:
        counts = {name: (await js.stream_info(name)).state.messages for name in streams}
        consumer = await js.consumer_info(CMD_STREAM, DURABLE)
        sub = await js.pull_subscribe_bind(DURABLE, CMD_STREAM)
        await asyncio.sleep(ACK_WAIT_S + 0.5)  # the two delivered but unacknowledged are due again
        got = []
        for _ in range(10):
            try:
                batch = await sub.fetch(3, timeout=1)
            except TimeoutError:
                break
            for msg in batch:
                got.append(json.loads(msg.data)["n"])
                await msg.ack_sync()
        return {
            "streams": streams,
            "counts": counts,
            "pending": consumer.num_pending,
            "ack_pending": consumer.num_ack_pending,
            "got": sorted(got),
        }
    finally:
        await nc.close()


def _backup(tmp_path: Path) -> tuple[Path, Paths]:
    source = _data_dir(tmp_path / "source")
    staging = tmp_path / "staging"
    staging.mkdir()
    with backup_nats.nats_on_store(source, tmp_path / "nats-source.log") as running:
        asyncio.run(_busy_platform(running, source.root))
        # taken while the server runs and serves (the platform's NATS, here named by BERTH_NATS_URL)
        with backup_nats.platform_nats(source, {"BERTH_NATS_URL": running}, tmp_path / "unused.log") as url:
            assert url == running
            streams = backup_nats.snapshot_streams(running, staging / "nats")
    dump = staging / "database.dump"
    dump.write_bytes(b"PGDMP not a real dump")
    archive = tmp_path / "out" / "backup.tar.gz"
    archive.parent.mkdir()
    write_backup(
        source,
        archive,
        PASSPHRASE,
        dump,
        database="berth",
        heads={"api": {"schema": "api", "head": "api_0020"}},
        server_version="18.1",
        now=NOW,
        kdf=fmt.Kdf.new(2**14),
        streams=streams,
        nats_taken_at="2026-12-05T09:00:00.123456Z",
    )
    return archive, source


def test_without_a_store_there_is_no_nats_to_back_up(tmp_path: Path):
    paths = _data_dir(tmp_path / "empty")
    with backup_nats.platform_nats(paths, {}, tmp_path / "n.log") as url:
        assert url is None
    with backup_nats.platform_nats(paths, {"BERTH_NATS_URL": "nats://127.0.0.1:4999"}, tmp_path / "n.log") as url:
        assert url == "nats://127.0.0.1:4999"


def test_against_docker_compose_the_backup_is_admin_with_the_password_derived_from_the_secret_key(tmp_path: Path):
    from berth_cli import nats_auth

    paths = _data_dir(tmp_path / "compose")
    env = {"BERTH_NATS_URL": "nats://nats:4222", "BERTH_SECRET_KEY": "s3cret-key-of-the-platform"}
    with backup_nats.platform_nats(paths, env, tmp_path / "n.log") as url:
        derived = nats_auth.derived_password("s3cret-key-of-the-platform", "admin")
        assert url == f"nats://admin:{derived}@nats:4222"
        assert derived == nats_auth.derived_passwords("s3cret-key-of-the-platform")["admin"]  # as its NATS has it
    given = {**env, "BERTH_NATS_USER": "admin", "BERTH_NATS_PASSWORD": "p"}
    with backup_nats.platform_nats(paths, given, tmp_path / "n.log") as url:
        assert url == "nats://admin:p@nats:4222"  # given credentials win


def test_a_stopped_platform_s_store_is_read_by_a_server_started_for_the_backup(tmp_path: Path):
    source = _data_dir(tmp_path / "source")
    with backup_nats.nats_on_store(source, tmp_path / "nats.log") as url:
        asyncio.run(_busy_platform(url, source.root))
    with backup_nats.platform_nats(source, {}, tmp_path / "nats.log") as url:
        assert url is not None
        streams = backup_nats.snapshot_streams(url, tmp_path / "snapshots")
    assert [s.name for s in streams] == ["BERTH_CMD", "BERTH_DLQ", "BERTH_EVT", "BERTH_LOG"]
    assert [s.state["messages"] for s in streams] == [3, 0, 2, 0]
    assert all(s.path.stat().st_size > 0 for s in streams)


def test_pending_commands_survive_a_backup_and_a_restore(tmp_path: Path):
    archive, _ = _backup(tmp_path)
    with tarfile.open(archive, mode="r:gz") as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    snapshots = [f"nats/{s}.snapshot" for s in ("BERTH_CMD", "BERTH_DLQ", "BERTH_EVT", "BERTH_LOG")]
    assert names[-4:] == snapshots and set(snapshots) <= set(manifest["members"])
    assert manifest["format_version"] == 3 and manifest["nats"]["taken_at"] == "2026-12-05T09:00:00.123456Z"
    cmd = next(s for s in manifest["nats"]["streams"] if s["name"] == CMD_STREAM)
    assert cmd["member"] == "nats/BERTH_CMD.snapshot" and cmd["config"]["retention"] == "workqueue"
    assert cmd["state"]["messages"] == 3  # the acknowledged one is gone from the work queue

    target = Paths(tmp_path / "restored")
    target.root.mkdir(mode=0o700)
    staging = tmp_path / "restore-staging"
    staging.mkdir()
    verified = verify_archive(archive, PASSPHRASE, staging)
    assert restore_nats(target, verified, Changes(target.root, set())) == [
        "BERTH_CMD",
        "BERTH_DLQ",
        "BERTH_EVT",
        "BERTH_LOG",
    ]
    with backup_nats.nats_on_store(target, tmp_path / "nats-target.log") as url:  # as `berth up` runs it
        found = asyncio.run(_after_restore(url, target.root))
    assert found["streams"] == ["BERTH_CMD", "BERTH_DLQ", "BERTH_EVT", "BERTH_LOG"]
    assert found["counts"] == {"BERTH_CMD": 3, "BERTH_DLQ": 0, "BERTH_EVT": 2, "BERTH_LOG": 0}
    assert (found["pending"], found["ack_pending"]) == (1, 2)  # one never delivered, two delivered unacknowledged
    assert found["got"] == [1, 2, 3]  # every pending command is delivered; the acknowledged one (0) is not


def test_a_restore_onto_an_existing_store_is_refused_and_leaves_it_alone(tmp_path: Path):
    archive, _ = _backup(tmp_path)
    target = _data_dir(tmp_path / "occupied")
    (target.root / "nats").mkdir()
    staging = tmp_path / "restore-staging"
    staging.mkdir()
    verified = verify_archive(archive, PASSPHRASE, staging)
    with pytest.raises(fmt.BackupError, match="restored onto a new store only"):
        restore_nats(target, verified, Changes(target.root, {"secret.key", "nats"}))
    assert sorted(p.name for p in target.root.iterdir()) == ["nats", "secret.key"]
    assert list((target.root / "nats").iterdir()) == []


@pytest.mark.parametrize(
    "section",
    [
        {"streams": []},  # no taken_at
        {"taken_at": "x", "streams": [{"name": "../x", "member": "nats/../x.snapshot", "config": {}, "state": {}}]},
        {
            "taken_at": "x",
            "streams": [{"name": "S", "member": "nats/S.snapshot", "config": {"name": "T"}, "state": {}}],
        },
        {"taken_at": "x", "streams": [{"name": "S", "member": "nats/other.snapshot", "config": {"name": "S"}}]},
        {
            "taken_at": "x",
            "streams": [{"name": "S", "member": "nats/S.snapshot", "config": {"name": "S"}, "state": {}}],
        },
    ],
)
def test_a_malformed_nats_section_is_refused(section):
    manifest = {"members": {"database.dump": {}}, "nats": section}  # the last: its member is not listed
    with pytest.raises(fmt.BackupError, match=r"nats section is malformed|NATS stream"):
        backup_nats.nats_streams(manifest)
    assert backup_nats.nats_streams({"members": {}}) == []  # versions 1 and 2: no NATS store


def test_outbox_rows_published_since_the_snapshot_are_published_again(database):
    conn = fmt.PgConn.from_url(database.replace("postgresql+asyncpg://", "postgresql://"))

    async def prepare() -> None:
        c = await pg._connect(conn)
        try:
            for schema in ("api", "scheduler"):
                await c.execute(f'CREATE SCHEMA "{schema}"')
                await c.execute(f'CREATE TABLE "{schema}".outbox (id text PRIMARY KEY, published_at timestamptz)')
            await c.execute(
                "INSERT INTO api.outbox VALUES ('before', '2026-12-05 08:59:59+00'), ('after', '2026-12-05 09:00:01+00'),"
                " ('never', NULL)"
            )
            await c.execute("INSERT INTO scheduler.outbox VALUES ('at', '2026-12-05 09:00:00.123456+00')")
        finally:
            await c.close()

    async def rows() -> dict[str, bool]:
        c = await pg._connect(conn)
        try:
            found = await c.fetch(
                "SELECT id, published_at IS NOT NULL AS p FROM api.outbox UNION ALL "
                "SELECT id, published_at IS NOT NULL FROM scheduler.outbox"
            )
            return {r["id"]: r["p"] for r in found}
        finally:
            await c.close()

    asyncio.run(prepare())
    assert pg.republish_since(conn, "2026-12-05T09:00:00.123456Z") == 2
    assert asyncio.run(rows()) == {"before": True, "after": False, "never": False, "at": False}
    assert pg.server_now(conn).endswith("Z")
