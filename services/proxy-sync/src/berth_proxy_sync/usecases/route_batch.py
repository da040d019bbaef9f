"""One batch of route changes on one server's site: checked, written, confirmed, recorded and answered together.

First the server's site is taken from ``usecases/sites.py`` (a remote one opened and reconciled on first
use), in a session of its own: opening a server's site can take minutes, and no transaction stays open
for it. When the server has none now (:class:`SiteUnavailable`: unknown, removed, not usable, not
reachable), every command of the batch is recorded and answered ``evt.route.failed`` naming the server, in
one transaction, and nothing is written. Otherwise the batch is one transaction (``RouteBatch.run``):

1. Every command's advisory locks (its route's, then each host it claims or gives up, shared when its route
   id keeps owning the host, exclusive when that ownership begins or ends: ``domain/batches.py``; its
   application's certificate refresh lock, shared: ``usecases/cert_catchup.py``) are tried without
   waiting; a command whose route or host another transaction holds goes back to wait for a later batch.
   The others are caught up with a certificate refresh taken since their intake.
2. A claim of a host whose current owner this batch changes waits for a later batch too (the owner may be
   giving the host up), and so does a claim under a shared lock of a host nobody owns any more (it is
   claimed exclusively then); a claim of a host another route keeps is refused.
3. The message ids are recorded (``berth_common.db.unit.first_times``, what ``consume_once`` does for one
   message): a redelivered message has no second effect. Invalid input, a stale generation and a claimed
   host are answered ``evt.route.failed`` with nothing written.
4. Every change is written (renamed into place without waiting for the disk), then one wait on Traefik's
   API covers them all (its poller checks every waiting route in the same look) while the files and the
   directory are flushed to disk. A route with TLS options (``usecases/https.py``) has its uploaded
   certificates written before its file, its file rendered with its hosts' certificate states (DNS checks
   of the command included), and is live once its HTTPS and redirect routers are enabled too; its hosts'
   states are recorded with the change.
5. A change Traefik did not confirm (or whose write failed) gets its previous file back and
   ``evt.route.failed``; the others are recorded and answered ``evt.route.applied`` / ``evt.route.removed``.
6. The older commands that rode along with a route's change (``domain/batches.py``) are recorded and
   answered stale once that change is live; when it is not, they go back to wait for a later batch.

Each command has its own ``Unit`` on the batch's session, so what it emits carries ids derived from its own
message. When the transaction fails (the database), every file of the batch is put back as the database
has it and every command of the batch fails with the error (its message is delivered again). A crash
between the write and the commit leaves files the database does not have: the next start rewrites every
local file from the database (``reconcile``), a server's on its site's first use, and the unacknowledged
messages are delivered again.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_common.bus import Bus
from berth_common.catalogue import RouteFailed, RouteRemoved, RoutesApplied
from berth_common.db import Unit
from berth_common.db.unit import first_times, write_outbox
from berth_common.logging import get_logger
from berth_proxy_sync.adapters import repo
from berth_proxy_sync.adapters.sites import Site
from berth_proxy_sync.adapters.traefik_api import NotLiveError
from berth_proxy_sync.domain.batches import (
    Batch,
    claim_conflicts,
    command_locks,
    host_lock_modes,
    lost_shared_claims,
    stale_reason,
    waits_for_batch,
)
from berth_proxy_sync.domain.routes import Route, file_name, other_routers, render
from berth_proxy_sync.domain.tls import HostStates
from berth_proxy_sync.usecases import cert_catchup
from berth_proxy_sync.usecases.https import Https
from berth_proxy_sync.usecases.route_command import Command
from berth_proxy_sync.usecases.sites import Sites, SiteUnavailable

log = get_logger(__name__)


@dataclass(eq=False)
class _Change:
    cmd: Command
    unit: Unit
    previous: Route | None
    written: bool = False
    seconds: float = 0.0
    problem: str | None = None


@dataclass
class Outcome:
    """What a batch did: the commands that wait for a later batch, and the units to publish (in order)
    once the transaction committed."""

    deferred: list[Command] = field(default_factory=list)
    answered: list[Command] = field(default_factory=list)
    units: list[Unit] = field(default_factory=list)
    rider_units: list[Unit] = field(default_factory=list)  # published after ``units``: stale after live
    written: int = 0  # route files written or deleted
    phases_ms: dict[str, float] = field(default_factory=dict)  # where the batch's time went (its log line)
    stale: int = 0  # older commands answered stale once their route's newer change was live


@dataclass
class RouteBatch:
    sites: Sites
    server_id: str
    bus: Bus
    sessionmaker: async_sessionmaker[AsyncSession]
    live_timeout_s: float
    https: Https | None = None
    site: Site | None = field(default=None, init=False)  # the server's site, taken at the batch's start
    # the certificate states of the batch's routes with TLS: as stored, and with the batch's DNS checks
    _stored: dict[str, HostStates] = field(default_factory=dict, init=False)
    _states: dict[str, HostStates] = field(default_factory=dict, init=False)

    async def run(self, batch: Batch[Command]) -> Outcome:
        """Carry out ``batch`` (see the module's docstring); raises when its transaction failed, after the
        files were put back as the database has them."""
        async with self.sites.writing(self.server_id):
            return await self._run_holding(batch)

    async def _run_holding(self, batch: Batch[Command]) -> Outcome:
        out = Outcome()
        changes: list[_Change] = []
        started = time.monotonic()
        unavailable = await self._take_site()
        out.phases_ms["site_ms"] = _ms_since(started)
        try:
            async with self.sessionmaker() as session, session.begin():
                if unavailable is not None:
                    await self._unavailable(session, batch, out, unavailable)
                else:
                    await self._run(session, batch, out, changes)
        except BaseException:
            for ch in changes:
                if ch.written:
                    await self._restore(ch.cmd.route_id, ch.previous)
            raise
        if out.written:
            log.info(
                "route batch",
                server_id=self.server_id,
                changes=out.written,
                failed=sum(1 for ch in changes if ch.problem),
                stale=out.stale,
                deferred=len(out.deferred),
                took_ms=_ms_since(started),
                queued_ms=round((started - min(c.arrived for c in batch.changes)) * 1000, 1),
                **out.phases_ms,
            )
        return out

    async def _take_site(self) -> str | None:
        """Take the server's site (``self.site``); why it has none now, when it has none."""
        async with self.sessionmaker() as session:
            try:
                self.site = await self.sites.site(self.server_id, session)
            except SiteUnavailable as exc:
                return str(exc)
        return None

    async def _run(self, session: AsyncSession, batch: Batch[Command], out: Outcome, changes: list[_Change]) -> None:
        started = time.monotonic()
        valid = [c for c in batch.changes if c.valid]
        held = await repo.held_hosts(session, sorted({c.route_id for c in valid}))
        modes = {id(c): host_lock_modes(c.hosts, held.get(c.route_id, {}), self.server_id) for c in valid}
        locks = [command_locks(c.route_id, modes[id(c)], self.server_id) for c in valid]
        if self.https is not None:  # and its application's certificate refresh lock (shared)
            locks = [[*ls, *more] for ls, more in zip(locks, cert_catchup.refresh_locks(valid), strict=True)]
        flat = [lock for ls in locks for lock in ls]
        got = iter(await repo.try_locks(session, [k for k, _ in flat], [shared for _, shared in flat]))
        locked = {id(c) for c, ls in zip(valid, locks, strict=True) if all([next(got) for _ in ls])}
        out.deferred = [c for c in valid if id(c) not in locked]
        live = [c for c in batch.changes if not c.valid or id(c) in locked]
        stored = await repo.load_many(session, self.server_id, sorted({c.route_id for c in live if c.valid}))
        owners = await repo.host_owners(session, sorted({h for c in live for h in c.hosts}))
        changing = {c.route_id for c in live if c.valid}
        conflicts = {id(c): claim_conflicts(c.route_id, c.hosts, owners) for c in live}
        waiting = [
            c
            for c in live
            if waits_for_batch(conflicts[id(c)], changing - {c.route_id})
            or (c.valid and lost_shared_claims(c.route_id, c.hosts, modes[id(c)], owners))
        ]
        out.deferred += waiting
        live = [c for c in live if c not in waiting]
        if self.https is not None:
            await cert_catchup.in_batch(session, live)

        first = await first_times(session, [c.delivery for c in live])
        for cmd in live:
            out.answered.append(cmd)
            if (cmd.delivery.consumer, cmd.delivery.envelope.id) not in first:
                log.info("duplicate message skipped", consumer=cmd.delivery.consumer, id=cmd.delivery.envelope.id)
                continue
            unit = Unit(session=session, bus=self.bus, delivery=cmd.delivery)
            out.units.append(unit)
            current = stored.get(cmd.route_id)
            reason = cmd.error or stale_reason(cmd.generation, current.generation if current else None)
            if reason is None and conflicts[id(cmd)]:
                taken = ", ".join(f"{h} (route {r})" for h, r in sorted(conflicts[id(cmd)].items()))
                reason = f"hosts already routed: {taken}"
            if reason is not None:
                self._fail(unit, cmd, reason)
            else:
                changes.append(_Change(cmd, unit, current.active if current else None))

        if self.https is not None:
            routes = [r for ch in changes for r in (ch.cmd.route, ch.previous) if r is not None]
            checks = {ch.cmd.route_id: ch.cmd.checks for ch in changes}
            self._stored, self._states = await self.https.states(session, self.server_id, routes, checks)
        checked = time.monotonic()
        out.phases_ms["checks_ms"] = _ms_since(started)  # the locks, the stored routes, the claims
        await self._write_and_confirm(changes)
        out.phases_ms["confirm_ms"] = _ms_since(checked)
        await repo.save_many(
            session,
            self.server_id,
            [(ch.cmd.route, ch.seconds * 1000) for ch in changes if not ch.problem and ch.cmd.route],
        )
        await repo.mark_removed_many(
            session,
            self.server_id,
            [
                (ch.cmd.route_id, ch.cmd.generation, ch.previous)
                for ch in changes
                if not ch.problem and not ch.cmd.route
            ],
        )
        for ch in changes:
            if ch.problem is not None:
                await self._restore(ch.cmd.route_id, ch.previous)
                self._fail(ch.unit, ch.cmd, ch.problem)
            else:
                if self.https is not None:  # the certificate state of its hosts, in its transaction
                    await self.https.record(session, ch.unit, self.server_id, ch.cmd.msg, ch.cmd.route, ch.cmd.checks)
                self._answer(ch)
        await self._answer_riders(session, batch, changes, out)
        await write_outbox(session, [*out.units, *out.rider_units])
        out.written = sum(1 for ch in changes if ch.written)

    async def _unavailable(self, session: AsyncSession, batch: Batch[Command], out: Outcome, reason: str) -> None:
        """The server has no site now: every command of the batch (riders too) is recorded and answered
        ``evt.route.failed`` with the reason, which names the server (invalid input with its own error);
        nothing is written."""
        commands = [*batch.changes, *(r for rs in batch.riders.values() for r in rs)]
        log.warning("route batch refused: no site", server_id=self.server_id, commands=len(commands), reason=reason)
        first = await first_times(session, [c.delivery for c in commands])
        for cmd in commands:
            out.answered.append(cmd)
            if (cmd.delivery.consumer, cmd.delivery.envelope.id) not in first:
                continue
            unit = Unit(session=session, bus=self.bus, delivery=cmd.delivery)
            out.units.append(unit)
            self._fail(unit, cmd, cmd.error or reason, quiet=True)
        await write_outbox(session, out.units)

    async def _answer_riders(
        self, session: AsyncSession, batch: Batch[Command], changes: list[_Change], out: Outcome
    ) -> None:
        """The older commands of a route whose change is now live are stale: recorded and answered so. Those
        of a route whose change did not happen wait for the next batch (as if they arrived after it)."""
        live = {ch.cmd.route_id: ch.cmd.generation for ch in changes if ch.problem is None}
        riding = [r for rid, rs in batch.riders.items() if rid in live for r in rs]
        out.deferred += [r for rid, rs in batch.riders.items() if rid not in live for r in rs]
        first = await first_times(session, [r.delivery for r in riding])
        for cmd in riding:
            out.answered.append(cmd)
            if (cmd.delivery.consumer, cmd.delivery.envelope.id) not in first:
                continue
            unit = Unit(session=session, bus=self.bus, delivery=cmd.delivery)
            out.rider_units.append(unit)
            self._fail(unit, cmd, stale_reason(cmd.generation, live[cmd.route_id]) or "stale", quiet=True)
        out.stale = len(riding)

    async def _write_and_confirm(self, changes: list[_Change]) -> None:
        """Write every change, then wait for Traefik to show all of them (one poller for the batch) while
        the files are flushed; each change gets its seconds to live or its problem."""
        assert self.site is not None
        files, traefik = self.site.files, self.site.traefik
        waits: list[asyncio.Task[float]] = []
        waiting: list[_Change] = []
        for ch in changes:
            route = ch.cmd.route
            try:
                if route is not None:
                    if self.https is not None and route.tls is not None and self.site.tls is not None:
                        await self.https.write_certificates(self.site, route)
                    await files.write(route.file_name, self._render(route, self._states), durable=False)
                else:
                    await files.delete(file_name(ch.cmd.route_id), durable=False)
            except OSError as exc:  # nothing was renamed into place: the previous file is still there
                ch.problem = str(exc)
                continue
            ch.written = True
            if route is not None:
                extra = other_routers(route, self.site.tls, self._states.get(route.route_id))
                waits.append(asyncio.ensure_future(traefik.wait_live(route, self.live_timeout_s, extra)))
            else:
                waits.append(asyncio.ensure_future(traefik.wait_gone(ch.cmd.route_id, self.live_timeout_s)))
            waiting.append(ch)
        if not waiting:
            return
        names = [ch.cmd.route.file_name for ch in waiting if ch.cmd.route]
        flushed = asyncio.create_task(files.sync(*names))
        results = await asyncio.gather(*waits, return_exceptions=True)
        await asyncio.wait({flushed})
        flush_error = flushed.exception()
        for ch, result in zip(waiting, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, NotLiveError | OSError):
                    raise result
                ch.problem = str(result)
            elif flush_error is not None:  # a flush error fails the change like a write error
                ch.problem = f"{type(flush_error).__name__}: {flush_error}"
            else:
                ch.seconds = result

    async def _restore(self, route_id: str, previous: Route | None) -> None:
        """Put the file back as the database has it (the last confirmed state)."""
        assert self.site is not None
        try:
            if previous is None:
                await self.site.files.delete(file_name(route_id))
            else:
                await self.site.files.write(previous.file_name, self._render(previous, self._stored))
        except OSError as exc:  # re-derived from the database: a server's at its next use or keep-up pass
            log.error("could not restore route file", route_id=route_id, server_id=self.server_id, error=str(exc))
            self.sites.stale(self.server_id)

    def _render(self, route: Route, states: dict[str, HostStates]) -> str:
        """The route's file; with TLS options its HTTPS part when the site serves HTTPS."""
        assert self.site is not None
        return render(route, self.site.tls, states.get(route.route_id))

    def _fail(self, unit: Unit, cmd: Command, reason: str, *, quiet: bool = False) -> None:
        if not quiet:  # riders of a live change are counted in the batch's log line instead
            log.warning(
                "route change failed",
                route_id=cmd.route_id,
                server_id=self.server_id,
                generation=cmd.generation,
                op=cmd.operation,
                reason=reason,
            )
        unit.stage(
            RouteFailed(
                route_id=cmd.msg.route_id,
                generation=cmd.generation,
                server_id=cmd.msg.server_id,
                operation=cmd.operation,
                reason=reason[:4000],
            )
        )

    def _answer(self, ch: _Change) -> None:
        """``evt.route.removed`` or ``evt.route.applied`` for a change Traefik confirmed."""
        cmd, live_ms = ch.cmd, round(ch.seconds * 1000, 1)
        route = cmd.route
        event: RouteRemoved | RoutesApplied = (
            RouteRemoved(route_id=cmd.route_id, generation=cmd.generation, server_id=cmd.msg.server_id, live_ms=live_ms)
            if route is None
            else RoutesApplied(
                route_id=route.route_id,
                generation=route.generation,
                server_id=cmd.msg.server_id,
                hosts=list(route.hosts),
                upstreams=list(route.upstreams),
                live=True,
                live_ms=live_ms,
            )
        )
        what = "route removed" if route is None else "route live"
        log.info(what, route_id=event.route_id, server_id=self.server_id, generation=event.generation, live_ms=live_ms)
        ch.unit.stage(event)


def _ms_since(t: float) -> float:
    return round((time.monotonic() - t) * 1000, 1)
