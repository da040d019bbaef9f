"""Start again the one-click databases their engine stopped (``domain/revival.py``, as for replicas).

A database that answered ``running`` last (``adapters/database_runs.py``) is meant to run; its container
found exited although its restart policy asks for it to run (an engine that crashed or restarted, a
``docker kill``) is started again by the revival pass, on the leader, with what the last start ran (the
spec, its password sealed at rest), and one its engine started again after its process died is looked at
the same way: ``starting``, then ``running`` once the engine's readiness check passes, or ``failed`` with
the reason, announced for the request the api knows last, each revival's events with ids of their own (the
container's exit or start time). A ``failed`` one is not tried again until a command asks. A database being
stopped or removed is marked first (``Databases._hold``), so one stopped on purpose stays stopped; and the
database's lock keeps the pass and its commands apart.

A running database's TCP proxy (``domain/database_proxy.py``: a public database with a narrow allow-list)
found exited (killed, or stopped by its engine) is started again alone, by the same pass and under the same
lock, and one found gone is made again: the database's container is not touched and nothing is announced
(the database stays ``running``; its public port answers again once the proxy listens).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from berth_common import dbengines
from berth_common.catalogue import DatabaseSpec
from berth_common.db import Unit
from berth_common.docker import DockerUnavailable
from berth_common.logging import get_logger
from berth_common.redaction import mask
from berth_scheduler.adapters import database_runs as runs
from berth_scheduler.adapters.docker import DockerOperationError
from berth_scheduler.adapters.fleet import ServerRefusedError
from berth_scheduler.domain import database_proxy
from berth_scheduler.domain.revival import restarted_by_engine, revival_tag, should_start
from berth_scheduler.usecases.databases import Databases, _reason
from berth_scheduler.usecases.rollout.orphans import Orphans

log = get_logger(__name__)


class DatabaseRevival:
    """The pass over the databases meant to run; one revival per database at a time."""

    def __init__(
        self,
        databases: Databases,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        orphans: Orphans | None = None,
    ) -> None:
        self.databases = databases
        self.now = now
        self.orphans = orphans  # asked to sweep a server whose engine stopped a database
        self._tasks: dict[str, asyncio.Task[str | None]] = {}
        self._seen: dict[str, str | None] = {}  # the start announced last, per database (``restarted_by_engine``)

    async def sweep(self) -> None:
        """Look at every database meant to run (each in a task of its own, so a slow start holds no other)."""
        async with self.databases.transactions.sessionmaker() as s:
            rows = await runs.running(s)
        for row in rows:
            task = self._tasks.get(row.database_id)
            if task is None or task.done():
                self._tasks[row.database_id] = asyncio.create_task(
                    self.revive(row.database_id), name=f"revive-database:{row.database_id}"
                )

    async def idle(self) -> None:
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await self.idle()

    async def revive(self, database_id: str) -> str | None:
        """The state announced for the database (None: nothing to do, or its server did not answer)."""
        db = self.databases
        async with db._locks[database_id]:
            async with db.transactions.sessionmaker() as s:
                row = await runs.get(s, database_id)
            if row is None or row.state != runs.RUNNING or row.spec is None:
                return None
            spec = runs.spec_of(row)
            name = dbengines.container_name(database_id)
            try:
                engine = await db._engine(spec.server_id)
                info = await engine.docker.inspect(name)
            except (DockerUnavailable, DockerOperationError, ServerRefusedError) as exc:
                log.info("database not checked", database_id=database_id, server_id=spec.server_id, error=str(exc))
                return None
            restarted = restarted_by_engine(info, self._seen.get(database_id))
            if info is None:
                return None
            if not (restarted or should_start(info, self.now())):
                if (info.get("State") or {}).get("Running"):
                    await self._proxy_again(spec)
                return None
            tag, state = revival_tag(info), info.get("State") or {}
            self._seen[database_id] = state.get("StartedAt")
            if restarted:
                what = "started again by its engine after its process exited"
            else:
                what = f"started again after its engine stopped it (exit code {state.get('ExitCode')})"
                if self.orphans is not None:  # its engine restarted: what the crash left is looked for
                    self.orphans.after_restart(spec.server_id, engine.docker)
            log.warning("database revived", database_id=database_id, how=what)
            try:
                answer = await db._up(spec, row.request_id, tag=tag)
            except Exception as exc:  # told like a command's failure, its password redacted
                reason = mask(f"{what}: {_reason(exc)}", [spec.reveal()])
                log.warning("database not started again", database_id=database_id, reason=reason)
                answer = db._event(database_id, spec.team_id, row.request_id, "failed", reason)

            async def record(unit: Unit) -> None:
                now = await runs.get(unit.session, database_id)
                if now is not None and now.request_id == row.request_id:  # no command came meanwhile
                    await runs.remember(unit.session, database_id, spec.team_id, row.request_id, answer.state)
                await unit.emit(answer, id=f"database-{row.request_id}{tag}-{answer.state}")

            await db.transactions.run(record)
            return str(answer.state)

    async def _proxy_again(self, spec: DatabaseSpec) -> bool:
        """The running database's TCP proxy started again alone when it exited (or made again when it is gone),
        the database's container untouched: the proxy's restart policy asks for it to run, as the database's
        does, and nothing else would start it before the database's next start. True: it was started."""
        if not database_proxy.needed(spec):
            return False
        db = self.databases
        try:
            engine = await db._engine(spec.server_id)
            proxy = await engine.docker.inspect(database_proxy.name(spec.database_id))
            if proxy is not None and not should_start(proxy, self.now()):
                return False
            log.warning("database proxy started again", database_id=spec.database_id, made_again=proxy is None)
            await db._proxy(engine, spec)
        except Exception as exc:  # its server, its image: the next pass tries again
            reason = mask(_reason(exc), [spec.reveal()])
            log.warning("database proxy not started again", database_id=spec.database_id, reason=reason)
            return False
        return True
