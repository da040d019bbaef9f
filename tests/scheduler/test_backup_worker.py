"""The backup worker process: its job and result as exact JSON; a run against this machine's Docker engine
and a real S3 API (moto, signature checks on) whose object is what the container wrote, compressed, with
the SHA-256 and size reported; its peak RSS under 100 MB for a stream of a few hundred MB; the tool's and
the engine's reasons; a restore's stream into a tool's stdin with its SHA-256 checked; and a worker whose
parent is cancelled or killed aborts its upload and exits."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from berth_common.catalogue import DirectoryDestination
from berth_common.s3 import Bucket, Credentials
from berth_common.s3.client import S3Client
from berth_common.ssh import SshTarget
from berth_scheduler.adapters.backup_process import run_worker
from berth_scheduler.domain.backup_jobs import (
    CheckJob,
    DumpJob,
    DumpResult,
    RestoreJob,
    S3Upload,
    SftpFile,
    job_from_json,
    parse_line,
    progress_line,
)
from berth_scheduler.usecases.backup_offload import sftp_file, worker_fits
from tests.support.images import TEST_LABEL, busybox_image, docker, remove_container
from tests.support.s3 import REGION, MotoS3

SOCKET = "/var/run/docker.sock"
LOOPBACK = ["127.0.0.1"]  # the test's store (moto) is on loopback: the outbound rule allows it explicitly
REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not Path(SOCKET).exists(), reason="no local Docker engine on a unix socket")


def test_a_directory_on_another_server_is_written_by_the_worker_when_it_can_be_given_the_server() -> None:
    here, there = DirectoryDestination(path="/b"), DirectoryDestination(server_id="srv-2", path="/b")
    assert worker_fits([here], remote=False) and worker_fits([here, there], remote=True)
    assert not worker_fits([here, there], remote=False)  # no SSH target to give the worker: in the scheduler
    target = SshTarget("10.0.0.2", 2222, "root", "-----PEM-----", "ssh-ed25519 AAAA")
    assert sftp_file(target, "/b/k.gz.partial") == SftpFile(
        "10.0.0.2", 2222, "root", "-----PEM-----", "ssh-ed25519 AAAA", "/b/k.gz.partial"
    )


def test_the_job_and_the_result_are_exact_json() -> None:
    upload = S3Upload("http://s3", "b", "eu-1", True, "AK", "SECRET", "p/k.gz", "u-1")
    remote = SftpFile("10.0.0.2", 22, "root", "-----PRIVATE-KEY-PEM-----", "ssh-ed25519 AAAA", "/b/k.gz.partial")
    remote_json = {
        "host": "10.0.0.2",
        "port": 22,
        "user": "root",
        "private_key": "-----PRIVATE-KEY-PEM-----",
        "host_key": "ssh-ed25519 AAAA",
        "path": "/b/k.gz.partial",
    }
    job = DumpJob(
        "/s.sock",
        "v1.41",
        "c1",
        ["pg_dump", "-Fc"],
        {"PGPASSWORD": "pw"},
        b"cfg",
        "gzip",
        5,
        2.5,
        [upload],
        ["/d/k.gz.partial"],
        key="a2V5",
        remote=[remote],
    )
    assert json.loads(job.to_json()) == {
        "kind": "dump",
        "socket": "/s.sock",
        "api_version": "v1.41",
        "container": "c1",
        "argv": ["pg_dump", "-Fc"],
        "env": {"PGPASSWORD": "pw"},
        "stdin": "Y2Zn",
        "compression": "gzip",
        "part_size": 5,
        "s3_timeout_s": 2.5,
        "uploads": [
            {
                "endpoint": "http://s3",
                "bucket": "b",
                "region": "eu-1",
                "path_style": True,
                "access_key": "AK",
                "secret_key": "SECRET",
                "key": "p/k.gz",
                "upload_id": "u-1",
                "outbound_allow": [],
                "outbound_private": True,
            }
        ],
        "files": ["/d/k.gz.partial"],
        "attach": False,
        "key": "a2V5",
        "remote": [remote_json],
    }
    assert job_from_json(job.to_json()) == job
    # a job in a log line shows no secret: no S3 secret, database password, team backup key or SSH key
    assert "SECRET" not in repr(job) and "pw" not in repr(job) and "a2V5" not in repr(job)
    assert "PRIVATE-KEY" not in repr(job)
    check = CheckJob(upload, s3_timeout_s=5.0)
    assert json.loads(check.to_json()) == {
        "kind": "check",
        "source": json.loads(job.to_json())["uploads"][0],
        "file": "",
        "s3_timeout_s": 5.0,
        "remote": None,
    }
    assert job_from_json(check.to_json()) == check
    assert job_from_json(CheckJob(file="/d/k.gz").to_json()) == CheckJob(file="/d/k.gz")
    from_server = CheckJob(remote=replace(remote, path="/b/k.gz"))
    assert json.loads(from_server.to_json())["remote"] == {**remote_json, "path": "/b/k.gz"}
    assert job_from_json(from_server.to_json()) == from_server
    restore = RestoreJob("/s.sock", "v1.41", "c1", ["pg_restore"], "ab" * 32, remote=replace(remote, path="/b/k.gz"))
    assert job_from_json(restore.to_json()) == restore and "PRIVATE-KEY" not in repr(restore)
    result = DumpResult(10, "ab", [[[1, '"e1"'], [2, '"e2"']]], exit_code=0, peak_rss_kb=4096)
    assert json.loads(result.line()) == {
        "type": "result",
        "size": 10,
        "sha256": "ab",
        "parts": [[[1, '"e1"'], [2, '"e2"']]],
        "exit_code": 0,
        "reason": None,
        "status": None,
        "peak_rss_kb": 4096,
    }
    assert parse_line(result.line()) == result
    assert result.upload_parts(0) == [(1, '"e1"'), (2, '"e2"')]
    assert json.loads(progress_line(7)) == {"type": "progress", "bytes": 7}
    assert parse_line(progress_line(7)) == 7
    assert parse_line("not json") is None and parse_line("[1]") is None and parse_line('{"type": "x"}') is None


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    server = MotoS3(tmp_path_factory.mktemp("moto") / "moto.log").start()
    server.make_bucket("worker-b")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def box() -> Iterator[str]:
    name = f"berth-test-bworker-{os.getpid()}"
    docker("run", "-d", "--name", name, "--label", TEST_LABEL, "--network", "none", busybox_image(), "sleep", "600")
    yield name
    remove_container(name)


def _client(s3: MotoS3) -> S3Client:
    return S3Client(Bucket(s3.endpoint, "worker-b", REGION, True), Credentials(s3.access_key, s3.secret_key))


async def _job(s3: MotoS3, box: str, key: str, argv: list[str], files: list[str] | None = None) -> DumpJob:
    client = _client(s3)
    try:
        upload_id = await client.create_multipart(key)
    finally:
        await client.close()
    upload = S3Upload(s3.endpoint, "worker-b", REGION, True, s3.access_key, s3.secret_key, key, upload_id, LOOPBACK)
    return DumpJob(SOCKET, "v1.41", box, argv, part_size=8 << 20, uploads=[upload], files=files or [])


async def _complete(s3: MotoS3, job: DumpJob, result: DumpResult) -> None:
    client = _client(s3)
    try:
        await client.complete_multipart(job.uploads[0].key, job.uploads[0].upload_id, result.upload_parts(0))
    finally:
        await client.close()


async def test_a_stream_of_a_few_hundred_mb_stays_under_100_mb(s3: MotoS3, box: str, tmp_path: Path) -> None:
    size = 200 << 20
    partial = tmp_path / "dump.gz.partial"
    partial.write_bytes(b"")
    argv = ["sh", "-c", f"head -c {size} /dev/urandom; echo done >&2"]
    job = await _job(s3, box, "big/dump.gz", argv, [str(partial)])
    seen: list[int] = []

    async def progress(n: int) -> None:
        seen.append(n)

    result = await asyncio.wait_for(run_worker(job, progress), 300)
    assert result.reason is None and result.exit_code == 0, result
    assert 0 < result.peak_rss_kb < 100 * 1024, f"the worker's peak RSS is {result.peak_rss_kb / 1024:.1f} MB"
    assert seen and seen == sorted(seen)
    await _complete(s3, job, result)
    # the file and the object are the same bytes, with the reported size and SHA-256, and the whole output
    body = partial.read_bytes()
    assert len(body) == result.size and hashlib.sha256(body).hexdigest() == result.sha256
    assert s3.objects("worker-b", "big/") == {"big/dump.gz": result.size}
    head = s3.client().get_object(Bucket="worker-b", Key="big/dump.gz", Range="bytes=0-1048575")["Body"].read()
    assert head == body[: 1 << 20]
    inflater, total = zlib.decompressobj(31), 0
    for start in range(0, len(body), 1 << 20):
        total += len(inflater.decompress(body[start : start + (1 << 20)]))
    assert inflater.eof and total == size


async def test_the_tools_and_the_engines_reasons(s3: MotoS3, box: str, tmp_path: Path) -> None:
    partial = tmp_path / "f.gz.partial"
    partial.write_bytes(b"")
    job = await _job(
        s3, box, "fail/a.gz", ["sh", "-c", "echo some; echo 'oops: no such database' >&2; exit 3"], [str(partial)]
    )
    result = await asyncio.wait_for(run_worker(job), 60)
    assert result.exit_code == 3
    assert result.reason == "sh exited with code 3: oops: no such database"
    assert not partial.exists()  # the worker removed its partial file
    missing = DumpJob(SOCKET, "v1.41", f"{box}-gone", ["true"])
    result = await asyncio.wait_for(run_worker(missing), 60)
    assert (result.reason, result.status) == (f"container {box}-gone does not exist", 404)
    small = await _job(s3, box, "ok/small.gz", ["echo", "hello"])
    result = await asyncio.wait_for(run_worker(small), 60)
    assert result.reason is None and len(result.upload_parts(0)) == 1
    await _complete(s3, small, result)
    assert gzip.decompress(s3.read("worker-b", "ok/small.gz")) == b"hello\n"


async def test_a_cancelled_worker_aborts_its_upload_and_exits(s3: MotoS3, box: str) -> None:
    job = await _job(s3, box, "cancel/a.gz", ["sh", "-c", "head -c 50000000 /dev/urandom; sleep 60"])
    task = asyncio.create_task(run_worker(job, grace_s=20))
    await asyncio.sleep(4)
    assert "cancel/a.gz" in s3.uploads("worker-b")
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 20  # the worker ended on stdin's end, not killed after the grace
    assert "cancel/a.gz" not in s3.uploads("worker-b") and s3.objects("worker-b", "cancel/") == {}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie has ended, its new parent has not reaped it yet


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


async def test_a_worker_whose_scheduler_is_killed_leaves_no_orphan(s3: MotoS3, box: str) -> None:
    job = await _job(s3, box, "orphan/a.gz", ["sh", "-c", "head -c 20000000 /dev/urandom; sleep 120"])
    script = (
        "import asyncio, sys\n"
        "from berth_scheduler.adapters.backup_process import run_worker\n"
        "from berth_scheduler.domain.backup_jobs import job_from_json\n"
        "asyncio.run(run_worker(job_from_json(sys.stdin.readline())))\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, cwd=REPO)
    assert parent.stdin is not None
    parent.stdin.write(job.to_json().encode() + b"\n")
    parent.stdin.flush()
    deadline = time.monotonic() + 30
    while not (workers := _children(parent.pid)) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert workers, "no worker process started"
    await asyncio.sleep(3)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(10)
    deadline = time.monotonic() + 30
    while _alive(workers[0]) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert not _alive(workers[0]), "the worker outlived its scheduler"
    assert "orphan/a.gz" not in s3.uploads("worker-b")


async def test_a_stream_stopped_while_a_stage_waits_on_a_full_queue_ends() -> None:
    from berth_scheduler.domain import backups as dom
    from berth_scheduler.usecases.backup_stream import pump

    async def endless() -> AsyncIterator[bytes]:
        while True:
            await asyncio.sleep(0)
            yield os.urandom(300_000)

    async def stuck(data: bytes) -> None:  # an upload that never ends: every queue fills up behind it
        await asyncio.sleep(3600)

    task = asyncio.create_task(pump(endless(), dom.compressor("gzip"), [stuck]))
    await asyncio.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)


async def test_a_check_reads_the_stored_object_to_its_end(s3: MotoS3, tmp_path: Path) -> None:
    body = os.urandom(3_000_000)
    s3.client().put_object(Bucket="worker-b", Key="check/a.gz", Body=body)
    source = S3Upload(s3.endpoint, "worker-b", REGION, True, s3.access_key, s3.secret_key, "check/a.gz", "", LOOPBACK)
    result = await asyncio.wait_for(run_worker(CheckJob(source)), 60)
    assert (result.reason, result.size, result.sha256) == (None, len(body), hashlib.sha256(body).hexdigest())
    (tmp_path / "a.gz").write_bytes(body)
    result = await asyncio.wait_for(run_worker(CheckJob(file=str(tmp_path / "a.gz"))), 60)
    assert (result.reason, result.size, result.sha256) == (None, len(body), hashlib.sha256(body).hexdigest())
    gone = await asyncio.wait_for(run_worker(CheckJob(S3Upload(**{**source.__dict__, "key": "check/none"}))), 60)
    assert gone.reason is not None and "NoSuchKey" in gone.reason
    missing = await asyncio.wait_for(run_worker(CheckJob(file=str(tmp_path / "none"))), 60)
    assert missing.reason == f"cannot read {tmp_path / 'none'}: No such file or directory"


async def test_a_helper_container_is_attached_started_and_read_to_its_end(s3: MotoS3) -> None:
    name = f"berth-test-bworker-helper-{os.getpid()}"
    argv = ["sh", "-c", "echo one; echo two; echo said >&2; exit 4"]
    docker("create", "--name", name, "--label", TEST_LABEL, "--network", "none", busybox_image(), *argv)
    try:
        job = await _job(s3, name, "helper/a.gz", argv)
        result = await asyncio.wait_for(run_worker(replace(job, attach=True)), 60)
        assert (result.exit_code, result.reason) == (4, "sh exited with code 4: said")
        docker("rm", "-f", name)
        docker("create", "--name", name, "--label", TEST_LABEL, "--network", "none", busybox_image(), "echo", "one")
        job = await _job(s3, name, "helper/b.gz", ["echo"])
        result = await asyncio.wait_for(run_worker(replace(job, attach=True)), 60)
        assert result.reason is None, result
        await _complete(s3, job, result)
        assert gzip.decompress(s3.read("worker-b", "helper/b.gz")) == b"one\n"
    finally:
        remove_container(name)


async def test_a_restore_streams_the_object_into_the_tools_stdin(s3: MotoS3, box: str, tmp_path: Path) -> None:
    data = os.urandom(3_000_000)
    stored = gzip.compress(data)
    s3.client().put_object(Bucket="worker-b", Key="restore/a.gz", Body=stored)
    source = S3Upload(s3.endpoint, "worker-b", REGION, True, s3.access_key, s3.secret_key, "restore/a.gz", "", LOOPBACK)
    sha = hashlib.sha256(stored).hexdigest()
    job = RestoreJob(SOCKET, "v1.41", box, ["sh", "-c", "cat > /tmp/restored"], sha, source=source)
    assert job_from_json(job.to_json()) == job
    result = await asyncio.wait_for(run_worker(job), 60)
    assert (result.reason, result.exit_code, result.size, result.sha256) == (None, 0, len(data), sha)
    assert docker("exec", box, "md5sum", "/tmp/restored").split()[0] == hashlib.md5(data).hexdigest()
    # the same object from the disk, recorded with another SHA-256: the tool got it, the result says no
    (tmp_path / "a.gz").write_bytes(stored)
    wrong = replace(job, source=None, file=str(tmp_path / "a.gz"), sha256="0" * 64)
    result = await asyncio.wait_for(run_worker(wrong), 60)
    assert result.reason == f"the object's SHA-256 is {sha}, the backup recorded {'0' * 64}"
    (tmp_path / "cut.gz").write_bytes(stored[:-50])
    cut = replace(wrong, file=str(tmp_path / "cut.gz"))
    result = await asyncio.wait_for(run_worker(cut), 60)
    assert result.reason is not None and result.reason.startswith("the backup object is damaged: ")
    failing = replace(job, argv=["sh", "-c", "cat > /dev/null; echo 'ERROR: no' >&2; exit 2"])
    result = await asyncio.wait_for(run_worker(failing), 60)
    assert (result.exit_code, result.reason) == (2, "sh exited with code 2: ERROR: no")
