"""Volume backups end to end: the real scheduler (a process, as deployed), a real S3 API (moto with signature
checks), Docker volumes and an application container made here; the commands are published as the api would.

A file tree (nested directories, a binary file, a symlink, file modes and owners) is backed up as a tar
stream and restored into a new volume byte-identical (a listing with each file's SHA-256, mode, owner and
link compared); over an existing volume only when confirmed. What the command names is stopped for the
dump and started again, also when the upload fails; wrong S3 credentials end failed with the reason and
nothing listed; retention applies to volume backups too; no helper container is left.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import socket
import subprocess
import tarfile
import time
import uuid

import pytest

from berth_common.catalogue import RestoreBackup, Retention, StartBackup, VolumeSource
from berth_common.db.provision import provision
from tests.scheduler.backup_support import Harness, SchedulerProcess, scheduler_env
from tests.support.images import DOCKER, busybox_image, docker, remove_container
from tests.support.s3 import MotoS3

pytestmark = [pytest.mark.slow, pytest.mark.docker]
WRONG_SECRET = "wrong-secret-never-shown-5d2"
BINARY = bytes(range(256)) * 64 + os.urandom(70000)


@pytest.fixture(scope="module")
def moto(tmp_root):
    server = MotoS3(tmp_root / f"moto-volumes-{uuid.uuid4().hex[:8]}.log").start()
    yield server
    server.stop()


def _tree() -> bytes:
    """The file tree written into the volume, as a tar (modes and owners as given)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:

        def add(name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "", uid: int = 0) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, uid, 1_700_000_000
            info.linkname = link
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

        add("./etc", tarfile.DIRTYPE, 0o755)
        add("./etc/app.conf", tarfile.REGTYPE, 0o640, b"key = value\n", uid=1000)
        add("./data", tarfile.DIRTYPE, 0o700, uid=1000)
        add("./data/nested", tarfile.DIRTYPE, 0o750, uid=1000)
        add("./data/nested/deeper", tarfile.DIRTYPE, 0o755, uid=1000)
        add("./data/nested/deeper/blob.bin", tarfile.REGTYPE, 0o600, BINARY, uid=1000)
        add("./data/nested/run.sh", tarfile.REGTYPE, 0o755, b"#!/bin/sh\necho hi\n")
        add("./data/empty", tarfile.REGTYPE, 0o444)
        add("./current", tarfile.SYMTYPE, 0o777, link="data/nested/deeper/blob.bin")
    return out.getvalue()


def write_tree(volume: str, unique: str) -> None:
    helper = f"berth-test-volfill-{unique}"
    docker("create", "--name", helper, "-v", f"{volume}:/v", busybox_image(), "true")
    try:
        subprocess.run(
            [DOCKER, "cp", "-a", "-", f"{helper}:/v"], input=_tree(), check=True, capture_output=True, timeout=60
        )
    finally:
        remove_container(helper)


def listing(volume: str) -> list[tuple[str, ...]]:
    """Every entry of the volume: name, type, mode, owner, link target, size and SHA-256 of its bytes."""
    tar = subprocess.run(
        [DOCKER, "run", "--rm", "-v", f"{volume}:/v:ro", busybox_image(), "tar", "-C", "/v", "-cf", "-", "."],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    out = []
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        for m in archive.getmembers():
            data = archive.extractfile(m).read() if m.isfile() else b""  # type: ignore[union-attr]
            mtime = str(m.mtime) if m.isfile() else ""
            out.append(
                (
                    m.name,
                    m.type.decode(),
                    oct(m.mode),
                    f"{m.uid}:{m.gid}",
                    m.linkname,
                    mtime,
                    hashlib.sha256(data).hexdigest(),
                )
            )
    return sorted(out)


def started_at(container: str) -> tuple[bool, str]:
    state = json.loads(docker("inspect", "-f", "{{json .State}}", container))
    return state["Running"], state["StartedAt"]


@pytest.fixture
async def harness(nats_server, database, tmp_root, unique, moto):
    try:
        image = busybox_image()
    except Exception as exc:  # no busybox-static or no Docker here
        pytest.skip(f"no busybox image: {exc}")
    urls = await provision(database, "test-secret", ("scheduler",))
    volume = f"berth-test-vol-{unique}"
    docker("volume", "create", "--label", "berth.team=team1", "--label", "berth.app=app1", volume)
    app = f"berth-test-volapp-{unique}"
    labels = ["--label", "berth.team=team1", "--label", "berth.app=app1", "--label", f"berth.service=web{unique}"]
    docker("run", "-d", "--init", "--name", app, *labels, "-v", f"{volume}:/data", image, "sleep", "3600")
    scheduler = SchedulerProcess(
        scheduler_env(nats_server.url, urls["scheduler"]), tmp_root / f"scheduler-{unique}.log"
    )
    bucket = moto.make_bucket(f"volumes-{unique}")
    h = Harness(nats_server.url, urls["scheduler"], moto, tmp_root, app, bucket, scheduler)
    await h.start()
    write_tree(volume, unique)
    h.volume, h.unique = volume, unique  # type: ignore[attr-defined]
    yield h
    await h.close()
    remove_container(app)
    for name in docker("volume", "ls", "-q", "--filter", f"name={volume}").split():
        subprocess.run([DOCKER, "volume", "rm", "-f", name], capture_output=True, timeout=60, check=False)


def source(h: Harness, **change: object) -> VolumeSource:
    return VolumeSource(volume=h.volume, application_id="app1", **change)  # type: ignore[attr-defined, arg-type]


def no_helper_left(h: Harness) -> None:
    left = docker("ps", "-a", "--filter", "label=berth.volume-helper", "--format", "{{.Names}}").split()
    assert not [n for n in left if h.unique in n or n.startswith("berth-volume-")], left  # type: ignore[attr-defined]


async def test_a_volume_is_backed_up_and_restored_byte_identical(harness: Harness) -> None:
    h = harness
    before = listing(h.volume)  # type: ignore[attr-defined]
    assert (
        "./current",
        "2",
        "0o777",
        "0:0",
        "data/nested/deeper/blob.bin",
        "",
        hashlib.sha256(b"").hexdigest(),
    ) in before
    assert any(e[0] == "./data/nested/deeper/blob.bin" and e[2] == "0o600" and e[3] == "1000:1000" for e in before)
    running, first_start = started_at(h.container)
    assert running
    stop = source(h, stop_service=f"web{h.unique}")  # type: ignore[attr-defined]
    done = await h.backup("vb-1", source=stop)
    assert done["type"] == "evt.backup.succeeded", done["data"].get("reason")
    data = done["data"]
    assert (data["engine"], data["database"]) == ("volume", h.volume)  # type: ignore[attr-defined]
    (obj,) = data["objects"]
    assert obj["key"].startswith("team1/db1/") and obj["key"].endswith("-vb-1.tar.gz")
    stored = h.s3.read(h.bucket, obj["key"])
    assert (len(stored), hashlib.sha256(stored).hexdigest()) == (obj["size"], obj["sha256"])
    # the application's container was stopped for the dump and runs again
    running, again = started_at(h.container)
    assert running and again != first_start
    no_helper_left(h)

    copy = f"{h.volume}-copy"  # type: ignore[attr-defined]
    restore = RestoreBackup(
        restore_id="vr-1",
        backup_id="vb-1",
        team_id="team1",
        database_id="db1",
        origin=h.s3_destination(),
        key=obj["key"],
        sha256=obj["sha256"],
        compression=data["compression"],
        target=source(h).model_copy(update={"volume": copy}),
    )
    assert h.api is not None
    await h.api.publish(restore)
    done = await h.outcome("evt.restore.", "restore_id", "vr-1")
    assert done["type"] == "evt.restore.succeeded", done["data"].get("reason")
    assert done["data"]["container"] == copy
    assert listing(copy) == before
    labels = json.loads(docker("volume", "inspect", "-f", "{{json .Labels}}", copy))
    assert labels["berth.team"] == "team1" and labels["berth.app"] == "app1"
    # into a volume that exists, without the confirmation: refused, the volume as it was
    await h.api.publish(restore.model_copy(update={"restore_id": "vr-exists"}))
    done = await h.outcome("evt.restore.", "restore_id", "vr-exists")
    assert done["type"] == "evt.restore.failed"
    assert f"volume {copy} already exists" in done["data"]["reason"]
    # over it, confirmed: a file added since is gone, the tree is the backup's
    docker("run", "--rm", "-v", f"{copy}:/v", busybox_image(), "sh", "-c", "echo x > /v/extra; rm /v/etc/app.conf")
    assert listing(copy) != before
    over = restore.model_copy(update={"restore_id": "vr-over", "overwrite": True, "confirm_overwrite": True})
    await h.api.publish(over)
    done = await h.outcome("evt.restore.", "restore_id", "vr-over")
    assert done["type"] == "evt.restore.succeeded", done["data"].get("reason")
    assert listing(copy) == before
    no_helper_left(h)


async def test_a_failed_upload_ends_failed_and_the_container_runs_again(harness: Harness) -> None:
    h = harness
    _, first_start = started_at(h.container)
    wrong = h.s3_destination(secret_key=WRONG_SECRET)
    done = await h.backup("vb-wrong", source=source(h, stop_containers=[h.container]), destinations=[wrong])
    assert done["type"] == "evt.backup.failed"
    assert "SignatureDoesNotMatch" in done["data"]["reason"], done["data"]["reason"]
    running, again = started_at(h.container)
    assert running and again != first_start  # stopped, then started again after the failure
    assert h.s3.objects(h.bucket) == {} and h.s3.uploads(h.bucket) == []
    # a volume that does not exist: failed with the reason, nothing listed
    done = await h.backup("vb-none", source=source(h).model_copy(update={"volume": f"{h.volume}-none"}))  # type: ignore[attr-defined]
    assert done["type"] == "evt.backup.failed"
    assert "does not exist" in done["data"]["reason"]
    assert h.s3.objects(h.bucket) == {} and h.events("evt.backup.succeeded") == []
    log = h.scheduler.log_path.read_bytes()
    assert WRONG_SECRET.encode() not in log and not any(WRONG_SECRET.encode() in raw for raw in h.raw)
    no_helper_left(h)


async def test_retention_applies_to_volume_backups(harness: Harness) -> None:
    h = harness
    ids = [f"vb-{i:02d}" for i in range(4)]
    for backup_id in ids:
        done = await h.backup(backup_id, source=source(h), retention=Retention(keep_count=2))
        assert done["type"] == "evt.backup.succeeded", done["data"].get("reason")
    names = sorted(h.s3.objects(h.bucket, "team1/db1/"))
    assert [n.rsplit("-", 1)[-1].split(".")[0] for n in names] == ["02", "03"], names
    assert sum(e["data"]["pruned"] for e in h.events("evt.backup.succeeded")) == 2


async def test_a_killed_scheduler_leaves_the_container_started_again(harness: Harness) -> None:
    h = harness
    # an endpoint that takes the connection and never answers: the backup waits with the container stopped
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        cmd = StartBackup(
            backup_id="vb-killed",
            team_id="team1",
            database_id="db1",
            source=source(h, stop_containers=[h.container]),
            destinations=[h.s3_destination(endpoint=endpoint)],
        )
        assert h.api is not None
        await h.api.publish(cmd)
        deadline = time.monotonic() + 60
        while started_at(h.container)[0] and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert not started_at(h.container)[0], h.scheduler.log_path.read_text()[-3000:]
        h.scheduler.kill()
        h.scheduler.start()  # a new scheduler process: its sweep ends the backup and starts the container
        done = await h.outcome("evt.backup.", "backup_id", "vb-killed", timeout=60)
        assert done["type"] == "evt.backup.failed"
        assert "stopped (killed or crashed)" in done["data"]["reason"]
        deadline = time.monotonic() + 30
        while not started_at(h.container)[0] and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert started_at(h.container)[0], h.scheduler.log_path.read_text()[-3000:]
    finally:
        silent.close()
    no_helper_left(h)
