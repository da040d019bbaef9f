"""The backup worker as a child process of the scheduler (``python -m berth_scheduler.entrypoints.backup_worker``):
the job written to its stdin as one JSON line (the only way the opened S3 secret key travels), its JSON
lines read from its stdout, its result returned.

The child gets a minimal environment (no ``BERTH_*`` settings or keys of the scheduler) and a fixed
malloc mmap threshold (``MALLOC``). Stdin stays open
while it runs: closing it (a cancel, a timeout, the scheduler ending) makes the worker abort its uploads
and exit; a worker that has not exited after ``grace_s`` is killed. The kernel ends it too if the
scheduler dies (``PR_SET_PDEATHSIG``), so no orphan keeps uploading.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Awaitable, Callable

from berth_scheduler.domain.backup_jobs import CheckJob, DumpJob, DumpResult, RestoreJob, parse_line

MODULE = "berth_scheduler.entrypoints.backup_worker"
KEEP_ENV = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "TMPDIR", "HOME")
LINE_LIMIT = 16 << 20  # a result line names every part (tens of bytes each)
STDERR_KEEP = 2000
# a fixed mmap threshold: each upload part is its own mapping, handed back to the system when the part is
# sent (glibc's moving threshold would keep them in the heap, where the freed parts stay resident)
MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)}


class WorkerError(RuntimeError):
    """The worker process ended without a result (crashed, killed); the message says how."""


async def run_worker(
    job: DumpJob | CheckJob | RestoreJob,
    on_progress: Callable[[int], Awaitable[None]] | None = None,
    grace_s: float = 10.0,
) -> DumpResult:
    """Run ``job`` in a new worker process; its result. A cancel ends the worker (its uploads aborted)."""
    env = {**{k: os.environ[k] for k in KEEP_ENV if k in os.environ}, **MALLOC}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        MODULE,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        limit=LINE_LIMIT,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stderr = asyncio.create_task(_tail(proc.stderr))
    result: DumpResult | None = None
    try:
        proc.stdin.write(job.to_json().encode() + b"\n")
        await proc.stdin.drain()
        while line := await proc.stdout.readline():
            item = parse_line(line.decode(errors="replace"))
            if isinstance(item, DumpResult):
                result = item
            elif isinstance(item, int) and on_progress is not None:
                await on_progress(item)
        code = await proc.wait()
    finally:
        await asyncio.shield(_end(proc, grace_s))
        stderr.cancel()
    if result is None:
        said = (await _done(stderr)).strip().splitlines()
        raise WorkerError(
            f"the backup worker ended without a result (exit code {code})" + (f": {said[-1]}" if said else "")
        )
    return result


async def _tail(stream: asyncio.StreamReader) -> str:
    kept = b""
    while data := await stream.read(65536):
        kept = (kept + data)[-STDERR_KEEP:]
    return kept.decode(errors="replace")


async def _done(task: asyncio.Task[str]) -> str:
    with contextlib.suppress(asyncio.CancelledError, Exception):
        return task.result() if task.done() else ""
    return ""


async def _end(proc: asyncio.subprocess.Process, grace_s: float) -> None:
    """Close the worker's stdin (it aborts and exits), kill it if it has not exited within ``grace_s``."""
    if proc.stdin is not None:
        with contextlib.suppress(Exception):
            proc.stdin.close()
    if proc.returncode is None:
        try:
            await asyncio.wait_for(proc.wait(), grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
