"""A backup of a database on a remote server: the real scheduler (a process) reaches a namespace test
server over SSH, dumps PostgreSQL in a container of that server's engine (exec through the forwarded
socket), stores the dump in S3 (moto) and in a directory on that server, and restores it there from that
directory. Both streams run in the backup worker process (the scheduler's log says so), which writes and
reads the directory over SFTP on an SSH connection of its own, accepting the pinned host key only."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from berth_common.catalogue import DirectoryDestination, RestoreBackup, ServerChanged
from berth_common.db.provision import provision
from berth_scheduler.adapters.backup_process import run_worker
from berth_scheduler.domain.backup_jobs import CheckJob, SftpFile
from tests.scheduler.backup_support import Harness, SchedulerProcess, fill, scheduler_env, start_postgres
from tests.support.images import postgres_image
from tests.support.s3 import MotoS3
from tests.support.testservers import TestServer, running_servers, server_changed

pytestmark = [pytest.mark.slow, pytest.mark.docker]
SERVER_ID = "srv-backup"


@pytest.fixture(scope="module")
def server() -> Iterator[TestServer]:
    image = postgres_image()
    with running_servers(1) as (one,):
        one.load_image(image)
        yield one


def _changed(server: TestServer) -> ServerChanged:
    return server_changed(server, SERVER_ID, team_id="team1", name="db-server")


def _logged(log: Path, event: str) -> list[dict]:
    """The scheduler's JSON log lines of ``event``."""
    found = []
    for line in log.read_text().splitlines():
        if event in line and line.startswith("{"):
            found.append(json.loads(line))
    return found


def _sftp_file(server: TestServer, path: Path, host_key: str | None = None) -> SftpFile:
    pinned = host_key or server.host_key.export_public_key("openssh").decode().strip()
    return SftpFile(server.address, 22, "root", server.private_key_pem, pinned, str(path))


async def test_the_worker_reads_a_file_on_a_server_over_its_own_ssh_with_the_pinned_host_key_only(
    server: TestServer, tmp_root: Path, unique: str
) -> None:
    stored = tmp_root / f"remote-object-{unique}.gz"  # on the server (its own network, this file system)
    data = b"a stored backup object " * 50_000
    stored.write_bytes(data)
    result = await run_worker(CheckJob(remote=_sftp_file(server, stored)))
    assert result.reason is None and (result.size, result.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode().strip()
    refused = await run_worker(CheckJob(remote=_sftp_file(server, stored, other)))
    assert refused.size == 0 and refused.reason is not None and "host key" in refused.reason, refused.reason
    missing = await run_worker(CheckJob(remote=_sftp_file(server, tmp_root / f"none-{unique}.gz")))
    assert missing.reason is not None and f"none-{unique}.gz" in missing.reason


async def test_a_database_on_a_remote_server_is_backed_up_and_restored(
    server: TestServer, nats_server, database, tmp_root, unique
) -> None:
    urls = await provision(database, "test-secret", ("scheduler",))
    s3 = MotoS3(tmp_root / f"moto-{unique}.log").start()
    container = start_postgres(unique, server.docker)
    scheduler = SchedulerProcess(scheduler_env(nats_server.url, urls["scheduler"]), tmp_root / f"sched-{unique}.log")
    h = Harness(
        nats_server.url,
        urls["scheduler"],
        s3,
        tmp_root,
        container,
        s3.make_bucket(f"backups-{unique}"),
        scheduler,
        server_id=SERVER_ID,
        cli=server.docker,
    )
    await h.start()
    try:
        assert h.api is not None
        await h.api.publish(_changed(server))
        fill(h)
        before = h.checksum()
        remote_dir = tmp_root / f"remote-backups-{unique}"  # on the server, written over SFTP
        directory = DirectoryDestination(server_id=SERVER_ID, path=str(remote_dir))
        done = await h.backup("b-remote", destinations=[h.s3_destination(), directory])
        assert done["type"] == "evt.backup.succeeded", done["data"].get("reason")
        s3_obj, dir_obj = done["data"]["objects"]
        assert dir_obj["destination"] == f"dir:{SERVER_ID}:{remote_dir}"
        stored = Path(dir_obj["key"]).read_bytes()
        assert hashlib.sha256(stored).hexdigest() == dir_obj["sha256"] == s3_obj["sha256"]
        assert stored == h.s3.read(h.bucket, s3_obj["key"])
        assert not list(remote_dir.rglob("*.partial"))
        # streamed by the worker process, not the scheduler (which only made, renamed and read back the file)
        (ended,) = [e for e in _logged(scheduler.log_path, "backup worker ended") if e["backup_id"] == "b-remote"]
        assert ended["peak_rss_mb"] > 0

        h.psql("DROP DATABASE shop")
        restore = RestoreBackup(
            restore_id="r-remote",
            backup_id="b-remote",
            team_id="team1",
            database_id="db1",
            origin=directory,
            key=dir_obj["key"],
            sha256=dir_obj["sha256"],
            compression="gzip",
            target=h.source("shop"),
        )
        await h.api.publish(restore)
        done = await h.outcome("evt.restore.", "restore_id", "r-remote")
        assert done["type"] == "evt.restore.succeeded", done["data"].get("reason")
        assert h.checksum() == before
        (ended,) = [e for e in _logged(scheduler.log_path, "restore worker ended") if e["restore_id"] == "r-remote"]
        assert ended["peak_rss_mb"] > 0
    finally:
        await h.close()
        subprocess.run(["docker", "-H", server.docker_host, "rm", "-f", container], capture_output=True, check=False)
        s3.stop()
