"""The real scheduler service in a process of its own, its schedules on a clock read from a file, so a test
can move time and SIGKILL the process (``test_schedules.py``).

``python -m tests.scheduler.schedule_process --nats URL --db URL --clock FILE --ready FILE``: the clock file
holds an ISO 8601 instant (the test rewrites it); the ready file appears once the service is wired.
"""

from __future__ import annotations

import argparse
import dataclasses
from datetime import datetime
from pathlib import Path

from berth_common.runtime import Context, run
from berth_scheduler.bootstrap import spec
from berth_scheduler.settings import SchedulerSettings


def file_clock(path: Path):
    def now() -> datetime:
        return datetime.fromisoformat(path.read_text().strip())

    return now


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--nats", "--db", "--clock", "--ready"):
        parser.add_argument(name, required=True)
    args = parser.parse_args()
    settings = SchedulerSettings(
        nats_url=args.nats,
        database_url=args.db,
        secret_key="test-secret",
        http_port=0,
        schedule_interval_s=0.2,
    )
    service = spec(settings, clock=file_clock(Path(args.clock)))
    wire = service.wire

    async def wired(ctx: Context) -> None:
        await wire(ctx)
        Path(args.ready).touch()

    run(dataclasses.replace(service, wire=wired))


if __name__ == "__main__":
    main()
