"""``python -m berth_scheduler.entrypoints.backup_worker``: one backup's stream in a process of its own
(``usecases.backup_worker``), or the read of a stored object before a restore writes anything. The job is one JSON line on stdin (it holds the opened S3 secret key: never
argv, environment or files); progress and the result are JSON lines on stdout.

The worker dies with the scheduler: stdin's end (the scheduler closed it, ended or was killed) and
SIGTERM (also sent by the kernel when the parent dies, ``PR_SET_PDEATHSIG``) cancel the stream, which
aborts its uploads and removes its files before the process exits. NATS and structlog are kept out of
the process (``berth_common`` imports them for the services; the worker uses neither).
"""

from __future__ import annotations

import sys

sys.modules.setdefault("nats", None)  # type: ignore[arg-type]
sys.modules.setdefault("structlog", None)  # type: ignore[arg-type]

import asyncio  # noqa: E402
import ctypes  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402

from berth_scheduler.domain.backup_jobs import CheckJob, DumpJob, RestoreJob, job_from_json  # noqa: E402
from berth_scheduler.usecases.backup_worker import check, run  # noqa: E402
from berth_scheduler.usecases.restore_worker import restore  # noqa: E402

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: stdin's end still stops the worker
        pass


def _emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _main(job: DumpJob | CheckJob | RestoreJob) -> int:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    stopping: list[bool] = []

    def stop() -> None:  # once: a second cancel would cut the abort of the uploads short
        if not stopping:
            stopping.append(True)
            task.cancel()

    loop.add_signal_handler(signal.SIGTERM, stop)

    def watch() -> None:  # stdin's end: the scheduler is gone or cancels
        sys.stdin.buffer.read()
        loop.call_soon_threadsafe(stop)

    threading.Thread(target=watch, daemon=True).start()
    try:
        if isinstance(job, CheckJob):
            result = await check(job, _emit)
        elif isinstance(job, RestoreJob):
            result = await restore(job, _emit)
        else:
            result = await run(job, _emit)
        _emit(result.line())
    except asyncio.CancelledError:
        return 1
    return 0


def main() -> None:
    _die_with_parent()
    job = job_from_json(sys.stdin.buffer.readline().decode())
    sys.exit(asyncio.run(_main(job)))


if __name__ == "__main__":
    main()
