"""The backup of a PostgreSQL database of at least 1 GiB restored from S3 by Berth, against a plain
pipeline of the same.

The rig and the database are those of ``bench_backup.py`` (``benchmarks/support/backup_rig.py``); the
objects restored are the ones that benchmark stored (made here when it did not run in this process).

Berth: ``cmd.backup.restore`` of its object into a new database, published as the api does; ``berth_s``
is from the publish to ``evt.restore.succeeded`` (``createdb``, then the object streamed from S3, its
SHA-256 checked, gunzipped and written to ``pg_restore``'s stdin through the engine's exec, in the backup
worker process).

Raw, in the same run, just before: ``docker exec <pg> createdb``, then a plain boto3 download (the test
dependency) of the raw side's object (the same ``pg_dump -Fc`` bytes, gzip level 6) piped into
``gzip -dc`` piped (argv pipes, no shell) into ``docker exec -i <pg> pg_restore`` with Berth's flags, into
another new database. Like with like: the same custom-format dump gzipped at the same level on both
sides, decompressed by gzip on both, the same ``pg_restore`` and S3 server. ``ratio`` is
``berth_s / raw_s``. Both restored databases must hold the rows of the original (count and a sum of row
hashes), or the run fails.

Also recorded: ``cpu_s``, the CPU seconds of each side's ``pg_restore``, its server backend and ``gzip``
processes (sampled every 0.5 s) with the wall time; ``peak_rss_mb``, the peak resident set (``VmHWM``) of
the backup worker process that streams the restore, and its CPU seconds; the scheduler's own peak
resident set (sampled every 50 ms) and CPU seconds during the restore; the load average. When the goal is missed, ``notes`` says where the time goes.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from benchmarks.bench_backup import WorkerPeak, berth_backup
from benchmarks.support.backup_rig import RssSampler, rig
from berth_common.catalogue import RestoreBackup

NAME = "restore"
GOALS = {"ratio": ("<=", 1.2)}


def run() -> dict[str, Any]:
    r = rig()
    assert r.scheduler is not None and r.scheduler.proc is not None
    if r.berth_object is None:  # run alone: make the objects first
        _, data, _ = berth_backup(f"b-{uuid.uuid4().hex[:6]}")
        (obj,) = data["objects"]
        r.berth_object = (obj["key"], obj["sha256"], obj["size"])
    if r.raw_object is None:
        key = f"raw/{uuid.uuid4().hex[:8]}.dump.gz"
        r.raw_object = (key, "", r.raw_backup(key)[1])
    load_before = os.getloadavg()[0]
    expected = r.checksum("bench")

    with r.cpu_watch("restored_raw") as raw_cpu:
        raw_s = r.raw_restore(r.raw_object[0], "restored_raw")
    if r.checksum("restored_raw") != expected:
        raise RuntimeError("the raw restore does not hold the original rows")

    key, sha256, _ = r.berth_object
    cmd = RestoreBackup(
        restore_id=f"r-{uuid.uuid4().hex[:6]}",
        backup_id="b",
        team_id="bench",
        database_id="bench",
        origin=r.destination(),
        key=key,
        sha256=sha256,
        compression="gzip",
        target=r.source("restored_berth"),
    )
    with (
        RssSampler(r.scheduler.proc.pid) as rss,
        WorkerPeak(r.scheduler.proc.pid) as worker,
        r.cpu_watch("restored_berth") as berth_cpu,
    ):
        berth_s, _, _ = r.command(cmd, "evt.restore.", "restore_id")
    if r.checksum("restored_berth") != expected:
        raise RuntimeError("Berth's restore does not hold the original rows")
    if not worker.peaks:  # the path measured is the backup worker's: a restore streamed in the scheduler is not it
        raise RuntimeError("the restore did not stream in a backup worker process")

    ratio = round(berth_s / raw_s, 3)
    result: dict[str, Any] = {
        "db_mb": r.db_mb,
        "berth_s": round(berth_s, 2),
        "raw_s": round(raw_s, 2),
        "ratio": ratio,
        "restored_db_mb": round(r.database_bytes("restored_berth") / (1 << 20), 1),
        "peak_rss_mb": worker.peak_mb,
        "worker_processes": len(worker.peaks),
        "scheduler_peak_rss_mb": rss.peak_mb,
        "scheduler_cpu_s": round(rss.cpu_s, 2),
        "worker_cpu_s": worker.cpu_s,
        "cpu_s": {"berth": berth_cpu.seconds(), "raw": raw_cpu.seconds()},
        "compression": "pg_dump -Fc default, then gzip level 6 on both sides",
        "raw_tool": "boto3 get_object | gzip -dc | docker exec -i pg_restore",
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    if notes := explain(result):
        result["notes"] = notes
    return result


def explain(result: dict[str, Any]) -> list[str]:
    """Where the time goes, from the measurements, when the goal is missed."""
    if result["ratio"] <= GOALS["ratio"][1]:
        return []
    berth, raw = result["cpu_s"]["berth"], result["cpu_s"]["raw"]
    return [
        f"Berth {result['berth_s']} s against raw {result['raw_s']} s; pg_restore's backend used"
        f" {berth.get('postgres_backend')} s of CPU against {raw.get('postgres_backend')} s, the backup worker"
        f" {result['worker_cpu_s']} s (download, SHA-256, gunzip and the exec stream in one thread, one after"
        f" the other) against gzip -dc's {raw.get('gzip')} s in a process of its own; load {result['load_avg_1m']}."
    ]


if __name__ == "__main__":
    print(run())
