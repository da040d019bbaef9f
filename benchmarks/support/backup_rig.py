"""What the backup and restore benchmarks share: one rig per process, built on first use and torn down at exit.

The rig is nats-server and Postgres from the project's launchers in a temporary directory, the scheduler as
its own process (as ``tests/scheduler/test_backups.py`` runs it, with its default part size and
heartbeats), a moto S3 server on 127.0.0.1 with signature checks (``tests.support.s3``), and a PostgreSQL
container from the local image filled to at least 1 GiB on disk. Both benchmarks use the same database, so
``make bench`` fills it once; the restore benchmark restores the objects the backup benchmark stored (or
makes them itself when run alone).

Berth's side publishes the commands on the bus as the api does and waits for their outcome events. The raw
side is a plain pipeline of processes joined by argv pipes (no shell): ``docker exec <pg> pg_dump -Fc`` into
``gzip -6`` into a plain multipart upload with boto3 (one part in flight while the next fills, the part
size the scheduler uses), and for a restore a plain boto3 download into ``gunzip`` into ``docker exec -i
<pg> pg_restore``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import psutil

from benchmarks.support import LOOPBACK_ALLOWED
from benchmarks.support.processes import start as _start
from benchmarks.support.processes import stop as _stop
from benchmarks.support.processes import wait_port as _wait_port
from berth_cli import components
from berth_common import sealing
from berth_common.bus import Bus, subscriptions_confirmed
from berth_common.catalogue import BackupSource, S3Destination
from tests.scheduler.backup_support import PG_PASSWORD, SEALING_KEY, SchedulerProcess, start_postgres
from tests.support.images import DOCKER, docker, remove_container
from tests.support.s3 import REGION, MotoS3

MB = 1024 * 1024
TARGET_DB_BYTES = 1 << 30  # the database is filled until pg_database_size reaches this
ROWS_PER_BATCH = 2_000_000  # about 270 MB on disk: id bigint and three md5 hex texts per row
PART_SIZE = 8 << 20  # the scheduler's default BERTH_BACKUP_PART_MB
GZIP_LEVEL = "-6"  # the level Berth's gzip codec uses (zlib level 6)
DATABASE = "bench"
OUTCOME_TIMEOUT_S = 600.0


class RssSampler:
    """The largest resident set of a process, sampled every ``every_s`` in a thread while in the block."""

    def __init__(self, pid: int, every_s: float = 0.05) -> None:
        self.proc, self.every_s = psutil.Process(pid), every_s
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.samples.append(self.proc.memory_info().rss)
            self._stop.wait(self.every_s)

    def __enter__(self) -> RssSampler:
        self.cpu0 = self.proc.cpu_times()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        cpu1 = self.proc.cpu_times()
        self.cpu_s = (cpu1.user - self.cpu0.user) + (cpu1.system - self.cpu0.system)

    @property
    def peak_mb(self) -> float:
        return round(max(self.samples) / MB, 1)


class CpuWatch:
    """CPU seconds of the work of a dump or restore, sampled every 0.5 s in a thread while in the block: the
    ``pg_dump`` / ``pg_restore`` processes and the server backends of ``database`` in the database's
    container (found by its cgroup), and the ``gzip`` processes this process started (the raw side's)."""

    def __init__(self, container_id: str, database: str) -> None:
        self.container_id, self.marker = container_id, f"postgres: postgres {database} "
        self.last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _in_container(self, pid: int) -> bool:
        try:
            return self.container_id in Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            return False

    def _kind(self, proc: psutil.Process) -> str | None:
        name = proc.info["name"] or ""
        if name == "gzip":
            return name if proc.info["ppid"] == os.getpid() else None
        if name in ("pg_dump", "pg_restore"):
            return name if self._in_container(proc.pid) else None
        cmd = " ".join(proc.info["cmdline"] or [])
        return "postgres_backend" if cmd.startswith(self.marker) and self._in_container(proc.pid) else None

    def _loop(self) -> None:
        while True:
            for proc in psutil.process_iter(["name", "cmdline", "ppid"]):
                with contextlib.suppress(psutil.Error):
                    if (kind := self._kind(proc)) is not None:
                        t = proc.cpu_times()
                        self.last[proc.pid] = (kind, t.user + t.system)
            if self._stop.wait(0.5):
                return

    def __enter__(self) -> CpuWatch:
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.wall_s = time.monotonic() - self.t0

    def seconds(self) -> dict[str, float]:
        """CPU seconds per kind of process, and the wall time of the block."""
        out: dict[str, float] = {}
        for kind, cpu in self.last.values():
            out[kind] = round(out.get(kind, 0.0) + cpu, 2)
        return {**out, "wall": round(self.wall_s, 2)}


def floor_rss_mb() -> float:
    """RSS of a process that only imports the scheduler (the runtime it loads before any work)."""
    code = "import berth_scheduler.bootstrap, sys; sys.stdout.write('ready\\n'); sys.stdout.flush(); sys.stdin.read()"
    proc = subprocess.Popen([components.bin_path("python"), "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        return round(psutil.Process(proc.pid).memory_info().rss / MB, 1)
    finally:
        proc.kill()
        proc.wait()


@dataclass
class Rig:
    tmp: Path
    nats_url: str = ""
    s3: MotoS3 | None = None
    container: str = ""
    container_id: str = ""
    bucket: str = ""
    scheduler: SchedulerProcess | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    db_mb: float = 0.0
    rows: int = 0
    fill_s: float = 0.0
    # what the backup benchmark stored, for the restore benchmark: (key, sha256 or "", size) per side
    berth_object: tuple[str, str, int] | None = None
    raw_object: tuple[str, str, int] | None = None

    # --- setup ---------------------------------------------------------------------------------------

    def start(self) -> Rig:
        from berth_common.db.provision import provision

        nats_port, pg_port = components.free_port(), components.free_port()
        self.procs.append(_start(components.nats_launch(self.tmp / "nats", nats_port), self.tmp / "nats.log"))
        pg_launch = components.pg_launch(self.tmp / "pg", pg_port, "bench-pw", shared_buffers="32MB")
        self.procs.append(_start(pg_launch, self.tmp / "pg.log"))
        _wait_port(nats_port)
        _wait_port(pg_port)
        self.nats_url = f"nats://127.0.0.1:{nats_port}"
        urls = asyncio.run(provision(components.pg_admin_url(pg_port, "bench-pw"), "bench-secret", ("scheduler",)))
        self.s3 = MotoS3(self.tmp / "moto.log").start()
        self.bucket = self.s3.make_bucket(f"bench-{uuid.uuid4().hex[:8]}")
        self.container = start_postgres(f"bench-{uuid.uuid4().hex[:8]}")
        self._fill()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
        env |= {
            **LOOPBACK_ALLOWED,
            "BERTH_NATS_URL": self.nats_url,
            "BERTH_DATABASE_URL": urls["scheduler"],
            "BERTH_SECRET_KEY": SEALING_KEY,
            "BERTH_HTTP_PORT": "0",
            "BERTH_LOG_FORMAT": "json",
            "BERTH_LOG_LEVEL": "WARNING",
        }
        self.scheduler = SchedulerProcess(env, self.tmp / "scheduler.log").start()
        sealing.configure(SEALING_KEY, keep_open=True)
        return self

    def psql(self, sql: str, database: str = "postgres", timeout: float = 600) -> str:
        argv = ["exec", self.container, "psql", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-d", database, "-At"]
        return docker(*argv, "-c", sql, timeout=timeout).strip()

    def _fill(self) -> None:
        """A table of rows that compress about as well as real data (md5 hex: about 2:1), no index."""
        t0 = time.monotonic()
        self.psql(f"CREATE DATABASE {DATABASE}")
        self.psql("CREATE TABLE items (id bigint NOT NULL, a text, b text, c text)", DATABASE)
        self.psql("CREATE DATABASE warm")  # a tiny one for the warm-up backup
        self.psql("CREATE TABLE t AS SELECT i FROM generate_series(1, 10) i", "warm")
        while self.database_bytes() < TARGET_DB_BYTES:
            first, last = self.rows + 1, self.rows + ROWS_PER_BATCH
            self.psql(
                "INSERT INTO items SELECT i, md5(i::text), md5((i * 7)::text), md5((i * 13)::text)"
                f" FROM generate_series({first}, {last}) i",
                DATABASE,
            )
            self.rows = last
        self.psql("CHECKPOINT")
        self.db_mb = round(self.database_bytes() / MB, 1)
        self.fill_s = round(time.monotonic() - t0, 1)

    def cpu_watch(self, database: str) -> CpuWatch:
        if not self.container_id:
            self.container_id = docker("inspect", "-f", "{{.Id}}", self.container)
        return CpuWatch(self.container_id, database)

    def database_bytes(self, database: str = DATABASE) -> int:
        return int(self.psql(f"SELECT pg_database_size('{database}')"))

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.container:
            remove_container(self.container)
        if self.s3 is not None:
            self.s3.stop()
        for proc in reversed(self.procs):
            _stop(proc, 2)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- the commands, as the api publishes them ---------------------------------------------------------

    def destination(self) -> S3Destination:
        assert self.s3 is not None
        return S3Destination(
            endpoint=self.s3.endpoint,
            bucket=self.bucket,
            prefix="bench/",
            access_key=self.s3.access_key,
            secret_key=self.s3.secret_key,
        )

    def source(self, database: str = DATABASE) -> BackupSource:
        return BackupSource(
            server_id="local",
            container=self.container,
            engine="postgresql",
            database=database,
            user="postgres",
            password=PG_PASSWORD,
        )

    def command(self, cmd: Any, family: str, key: str) -> tuple[float, dict[str, Any], dict[str, float]]:
        """Publish ``cmd``; (seconds from the publish to its outcome event, the outcome's data, seconds from
        the publish to each other event of the family seen on the way)."""
        return asyncio.run(self._command(cmd, family, key))

    async def _command(self, cmd: Any, family: str, key: str) -> tuple[float, dict[str, Any], dict[str, float]]:
        nc = await nats.connect(self.nats_url)
        bus = Bus("api", self.nats_url)  # the producer of these commands
        done: asyncio.Future[tuple[float, dict[str, Any]]] = asyncio.get_running_loop().create_future()
        steps: dict[str, float] = {}
        t0 = 0.0

        async def on_msg(msg: Any) -> None:
            env = json.loads(msg.data)
            if env["data"].get(key) != getattr(cmd, key):
                return
            now = time.monotonic() - t0
            if env["type"] in (f"{family}succeeded", f"{family}failed") and not done.done():
                done.set_result((now, {"type": env["type"], **env["data"]}))
            else:
                steps.setdefault(env["type"], round(now, 3))

        try:
            await nc.subscribe(f"{family}>", cb=on_msg)
            await subscriptions_confirmed(nc)
            await bus.connect()
            t0 = time.monotonic()
            await bus.publish(cmd)
            elapsed, data = await asyncio.wait_for(done, OUTCOME_TIMEOUT_S)
        except TimeoutError:
            log = (self.tmp / "scheduler.log").read_text()[-3000:]
            raise TimeoutError(f"no outcome of {family} within {OUTCOME_TIMEOUT_S}s; scheduler log:\n{log}") from None
        finally:
            await bus.close()
            await nc.close()
        if data["type"] != f"{family}succeeded":
            raise RuntimeError(f"{data['type']}: {data.get('reason')}")
        return elapsed, data, steps

    # --- the raw baseline ------------------------------------------------------------------------------------

    def boto(self) -> Any:
        import boto3
        from botocore.config import Config

        assert self.s3 is not None
        return boto3.client(
            "s3",
            endpoint_url=self.s3.endpoint,
            region_name=REGION,
            aws_access_key_id=self.s3.access_key,
            aws_secret_access_key=self.s3.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, read_timeout=300),
        )

    def raw_backup(self, key: str) -> tuple[float, int]:
        """``pg_dump -Fc | gzip -6 |`` a multipart upload of ``key``: (seconds, bytes stored)."""
        s3 = self.boto()
        t0 = time.monotonic()
        dump_argv = [DOCKER, "exec", "-e", f"PGPASSWORD={PG_PASSWORD}", self.container]
        dump_argv += ["pg_dump", "-Fc", "--no-password", "-U", "postgres", "-d", DATABASE]
        dump = subprocess.Popen(dump_argv, stdout=subprocess.PIPE)
        gz = subprocess.Popen(["gzip", GZIP_LEVEL, "-c"], stdin=dump.stdout, stdout=subprocess.PIPE)
        assert dump.stdout is not None and gz.stdout is not None
        dump.stdout.close()  # gzip holds it now
        upload_id = s3.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        parts: list[dict[str, Any]] = []
        size = 0
        with ThreadPoolExecutor(1) as pool:  # one part in flight while the next fills, as Berth's sink
            pending: Future[None] | None = None
            number = 0
            for body in _parts(gz.stdout, PART_SIZE):
                size += len(body)
                number += 1
                if pending is not None:
                    pending.result()

                def put(n: int = number, b: bytes = body) -> None:
                    etag = s3.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=b)
                    parts.append({"PartNumber": n, "ETag": etag["ETag"]})

                pending = pool.submit(put)
            if pending is not None:
                pending.result()
        if dump.wait() != 0 or gz.wait() != 0:
            s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise RuntimeError(f"raw dump failed: pg_dump {dump.returncode}, gzip {gz.returncode}")
        parts.sort(key=lambda p: p["PartNumber"])
        s3.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
        return time.monotonic() - t0, size

    def raw_restore(self, key: str, database: str) -> float:
        """A download of ``key`` ``| gunzip |`` ``pg_restore`` into a new ``database``: seconds."""
        s3 = self.boto()
        t0 = time.monotonic()
        env_arg = ["-e", f"PGPASSWORD={PG_PASSWORD}"]
        subprocess.run(
            [DOCKER, "exec", *env_arg, self.container, "createdb", "--no-password", "-U", "postgres", database],
            check=True,
            capture_output=True,
            timeout=60,
        )
        restore_argv = [DOCKER, "exec", "-i", *env_arg, self.container, "pg_restore", "--no-password"]
        restore_argv += ["--exit-on-error", "--no-owner", "-U", "postgres", "-d", database]
        gunzip = subprocess.Popen(["gzip", "-dc"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        restore = subprocess.Popen(restore_argv, stdin=gunzip.stdout)
        assert gunzip.stdin is not None and gunzip.stdout is not None
        gunzip.stdout.close()  # pg_restore holds it now
        body = s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        for chunk in body.iter_chunks(1 << 20):
            gunzip.stdin.write(chunk)
        gunzip.stdin.close()
        if gunzip.wait() != 0 or restore.wait() != 0:
            raise RuntimeError(f"raw restore failed: gunzip {gunzip.returncode}, pg_restore {restore.returncode}")
        return time.monotonic() - t0

    def checksum(self, database: str) -> str:
        """Rows and a digest of one column: the restored copy holds what was dumped."""
        return self.psql("SELECT count(*) || ':' || sum(hashtext(a || b || c)::bigint) FROM items", database)


def _parts(stream: Any, size: int) -> Iterator[bytes]:
    buf = bytearray()
    while chunk := stream.read(1 << 20):
        buf += chunk
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    if buf:
        yield bytes(buf)


def smaps_rollup_mb(pid: int) -> dict[str, float]:
    """``/proc/<pid>/smaps_rollup`` in MiB (``Rss``, ``Anonymous``...)."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1]) / 1024
    return out


_RIG: Rig | None = None


def rig() -> Rig:
    """The process's rig, started on first use (several minutes: most of it filling the database)."""
    global _RIG
    if _RIG is None:
        tmp = Path(tempfile.mkdtemp(prefix="berth-bench-backup-"))
        tmp.chmod(0o755)  # Postgres runs as its own user when we are root
        made = Rig(tmp)
        atexit.register(made.close)
        _RIG = made.start()
    return _RIG
