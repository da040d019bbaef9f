"""Routes: Traefik's dynamic directory kept as the database says; route changes coalesced per server.

Carries out ``cmd.route.apply`` and ``cmd.route.remove``, answered with ``evt.route.applied``,
``evt.route.removed`` or ``evt.route.failed``. A route change costs Traefik a reload of its whole
configuration and proxy-sync a wait for Traefik's API to show it; a burst of changes (many previews
opening, a server drained) handled one at a time would wait for one reload each. A route is (server_id,
route_id), and the commands of one server (its site: one dynamic directory, one Traefik; the local one or
the server's own, ``usecases/sites.py``) are coalesced: each handler hands its command to the server's
batcher and waits for its answer. One batcher task per server takes every command that arrived while the
previous batch was being applied (``domain/batches.py``) and applies them as one batch
(``usecases/route_batch.py``): the server's site taken at its start (a server without one now answers
every command of the batch ``evt.route.failed``, nothing written), the changes written together, reloaded
and confirmed together (one poll of Traefik's API checks every route of the batch), recorded in one
transaction with their message ids, then answered. A command alone starts a batch at once, so a single
change waits for nothing but its own reload.

Why this keeps the guarantees of one command per transaction:

- At-least-once: a command's message id is recorded in the transaction that records its change and
  stages its answer in the outbox, and its handler returns (the consumer acks) only after that transaction
  committed. The answers are then published in order while the next batch gathers (what a stop or a crash
  cuts short, the outbox relay publishes). A failed transaction fails every command of the batch: each is
  delivered again.
- One route's commands in order, one host claimed once: a batch changes a route once and gives a host to
  one route. Commands of one route in one window coalesce by generation: the newest is written, the older
  ones are answered stale once it is live (what they would get arriving after it; when it fails they wait
  for the next batch, as if they did); a second command of the same generation, or a claim of a host the
  batch gives to another route, waits for the next batch. A batch is one task per server, so no two
  batches of a server overlap; the advisory locks of each route and host are still taken (tried, never
  waited for: a locked command waits for a later batch without holding up the others), so another
  transaction working on the same route or host (another proxy-sync, another server's batch) never
  interleaves with it; the same route id's batches on several servers share the locks of the hosts it keeps
  (``domain/batches.py``).
- Generations: a command older than the route's recorded generation is refused as stale, inside the batch
  as before.
- One failure fails one route: a change Traefik does not confirm gets its previous file back and its own
  ``evt.route.failed``; the others of the batch are recorded and answered.
- Crash: files are derived state. Until the commit, the database keeps the previous routes; the next start
  rewrites every local file from it (``reconcile``), a server's site its files on first use
  (``usecases/sites.py``), and the unacknowledged commands are delivered again.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_common.bus import Bus
from berth_common.bus.consumer import Delivery
from berth_common.catalogue import ApplyRoutes, RemoveRoute
from berth_common.db.unit import publish_units
from berth_common.logging import get_logger
from berth_common.tasks import cancel_and_wait
from berth_proxy_sync.adapters import cert_repo, default_cert, repo
from berth_proxy_sync.adapters.cert_files import CertFiles
from berth_proxy_sync.adapters.files import DynamicDir
from berth_proxy_sync.domain import certificate
from berth_proxy_sync.domain.batches import Batch, next_batch
from berth_proxy_sync.domain.routes import render, render_sentinel
from berth_proxy_sync.domain.tls import TlsSite, certificate_names
from berth_proxy_sync.usecases import cert_catchup
from berth_proxy_sync.usecases.https import HostCheck, Https, sync_certificates
from berth_proxy_sync.usecases.route_batch import Outcome, RouteBatch
from berth_proxy_sync.usecases.route_command import Command
from berth_proxy_sync.usecases.sites import Sites

log = get_logger(__name__)
MAX_BATCH = 512  # route changes in one batch (one transaction, one reload)


@dataclass(eq=False)
class _Queue:
    """The commands of one server waiting for a batch, in arrival order, and its batcher task."""

    waiting: list[Command] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # held by a batch, or a refresh of route files


@dataclass
class Routes:
    """The route commands' use case: one batcher per server (``sites`` says where a server's files and
    Traefik are)."""

    sites: Sites
    bus: Bus
    sessionmaker: async_sessionmaker[AsyncSession]
    live_timeout_s: float = 10.0
    https: Https | None = None  # the HTTPS part of route changes (None: TLS options are ignored)
    retry_s: float = 0.05  # a batch whose every command found its route locked: look again after this
    max_batch: int = MAX_BATCH
    batches: int = 0  # batches that wrote files (observability, tests)
    _queues: dict[str, _Queue] = field(default_factory=dict)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _published: asyncio.Task[None] | None = None

    async def apply(self, msg: ApplyRoutes, delivery: Delivery) -> None:
        if self.https is not None:  # the application's newest uploaded certificates, none that ended
            msg = await cert_catchup.at_intake(self.sessionmaker, msg)
        checks: dict[str, HostCheck] = {}
        if self.https is not None and msg.tls is not None and msg.tls.acme:
            async with self.sessionmaker() as session:  # before the batch: no transaction waits on DNS
                checks = await self.https.check(session, msg)
        await self._submit(msg, delivery, checks)

    async def remove(self, msg: RemoveRoute, delivery: Delivery) -> None:
        await self._submit(msg, delivery)

    async def _submit(
        self, msg: ApplyRoutes | RemoveRoute, delivery: Delivery, checks: dict[str, HostCheck] | None = None
    ) -> None:
        """Hand the command to its server's batcher; return once it is answered (raise when its batch's
        transaction failed: the message is delivered again)."""
        cmd = Command.of(msg, delivery, next(self._seq), checks)
        cmd.done.add_done_callback(_retrieved)
        queue = self._queues.setdefault(msg.server_id, _Queue())
        queue.waiting.append(cmd)
        queue.wake.set()
        if queue.task is None or queue.task.done():
            # a context of its own: not the log and trace context of the message that happened to start it
            queue.task = asyncio.create_task(
                self._batcher(msg.server_id, queue), name=f"routes:{msg.server_id}", context=contextvars.Context()
            )
        try:
            await asyncio.shield(cmd.done)
        except asyncio.CancelledError:
            cmd.done.cancel()  # not taken into a batch any more (one already running still finishes)
            raise

    async def _batcher(self, server_id: str, queue: _Queue) -> None:
        while True:
            await queue.wake.wait()
            queue.wake.clear()
            try:
                await self._drain(server_id, queue)
            except Exception as exc:  # never leave a handler waiting for a batcher that is gone
                log.error("route batcher failed", server_id=server_id, error=f"{type(exc).__name__}: {exc}")
                waiting, queue.waiting = queue.waiting, []
                for cmd in waiting:
                    if not cmd.done.done():
                        cmd.done.set_exception(exc)

    async def _drain(self, server_id: str, queue: _Queue) -> None:
        """Apply batches until nothing waits."""
        while queue.waiting:
            batch = next_batch([c for c in queue.waiting if not c.done.done()], self.max_batch)
            queue.waiting = batch.left
            size = len(batch.changes) + sum(len(rs) for rs in batch.riders.values())
            async with queue.lock:
                deferred = await self._run(server_id, batch)
            if deferred:
                queue.waiting = sorted([*deferred, *queue.waiting], key=lambda c: c.seq)
            if deferred and len(deferred) == size:  # all locked elsewhere: wait for news or a while
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(queue.wake.wait(), self.retry_s)
                queue.wake.clear()

    async def _run(self, server_id: str, batch: Batch[Command]) -> list[Command]:
        """One batch; the commands that wait for a later one."""
        if not batch.changes:
            return []
        try:
            run = RouteBatch(self.sites, server_id, self.bus, self.sessionmaker, self.live_timeout_s, self.https)
            out = await run.run(batch)
        except Exception as exc:
            size = len(batch.changes)
            log.error("route batch failed", server_id=server_id, size=size, error=f"{type(exc).__name__}: {exc}")
            for cmd in [*batch.changes, *(r for rs in batch.riders.values() for r in rs)]:
                if not cmd.done.done():
                    cmd.done.set_exception(exc)
            return []
        if out.written:
            self.batches += 1
        for cmd in out.answered:  # committed: its handler returns and the consumer acks it
            if not cmd.done.done():
                cmd.done.set_result(None)
        previous = self._published
        self._published = asyncio.create_task(
            self._publish(previous, out), name=f"routes-publish:{server_id}", context=contextvars.Context()
        )
        return out.deferred

    async def _publish(self, previous: asyncio.Task[None] | None, out: Outcome) -> None:
        """After the commit: publish the batch's answers (after the previous batch's, so one route's events
        keep their order) while the next batch is gathered."""
        if previous is not None:
            await asyncio.wait({previous})
        try:
            await publish_units(self.bus, self.sessionmaker, out.units)
            await publish_units(self.bus, self.sessionmaker, out.rider_units)
        except Exception as exc:  # committed: the outbox relay publishes what is left
            log.warning("route answers left to the outbox relay", error=f"{type(exc).__name__}: {exc}")

    async def refresh(self, server_id: str, route_ids: list[str]) -> int:
        """Write the files of ``route_ids`` again from the database (their certificate states changed: an
        HTTP redirect waits for a certificate, a host cleared for ACME), between batches; how many changed."""
        queue = self._queues.setdefault(server_id, _Queue())
        async with queue.lock, self.sessionmaker() as session:
            site = await self.sites.site(server_id, session)
            stored = await repo.load_many(session, server_id, route_ids)
            states = await cert_repo.host_states(session, server_id, route_ids)
            written = 0
            for rid, st in sorted(stored.items()):
                if st.active is not None:
                    written += await site.files.write(st.route.file_name, render(st.route, site.tls, states.get(rid)))
        log.info("route files written for their certificates", server_id=server_id, routes=route_ids, written=written)
        return written

    async def prune_certificates(self, server_id: str) -> int:
        """Delete the uploaded certificates' files that no active route of the server names (one was
        deleted or replaced), between batches; how many files went."""
        queue = self._queues.setdefault(server_id, _Queue())
        async with queue.lock, self.sessionmaker() as session:
            site = await self.sites.site(server_id, session)
            if site.certs is None:
                return 0
            wanted = {n for route in await repo.active_routes(session, server_id) for n in certificate_names(route.tls)}
            gone = [n for n in await site.certs.names() if n not in wanted]
            for name in gone:
                await site.certs.delete(name)
        if gone:
            log.info("uploaded certificate files deleted", server_id=server_id, files=gone)
        return len(gone)

    async def close(self) -> None:
        """Stop the batchers (the consumers stopped first, so none is in a batch) and wait for the answers
        being published."""
        for queue in self._queues.values():
            await cancel_and_wait(queue.task)
        if self._published is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._published), 10)


def _retrieved(done: asyncio.Future[None]) -> None:
    """Mark a command's failure as seen when its handler is gone (it was cancelled)."""
    if not done.cancelled():
        done.exception()


def ensure_default_certificate(files: DynamicDir, wanted: bool = True) -> bool:
    """Write Traefik's default certificate unless a good one of ours is there (or remove ours when not
    ``wanted``: an operator's own default certificate); True when the file changed."""
    if not wanted:
        return certificate.is_ours(files.read(certificate.DEFAULT_CERT_FILE)) and files.delete(
            certificate.DEFAULT_CERT_FILE
        )
    text = default_cert.replacement(files.read(certificate.DEFAULT_CERT_FILE))
    return text is not None and files.write(certificate.DEFAULT_CERT_FILE, text)


async def reconcile(
    files: DynamicDir,
    sessionmaker: async_sessionmaker[AsyncSession],
    api_password: str,
    *,
    default_certificate: bool = True,
    tls: TlsSite | None = None,
    certs: CertFiles | None = None,
) -> dict[str, int]:
    """At start: write the sentinel, then every persisted route's file; delete managed files of routes that
    are gone.

    The sentinel holds Traefik's API router, for the holder of ``api_password`` only. The files are derived state; the database is the truth. The sentinel goes first: it keeps Traefik's
    configuration non-empty once the last route file is deleted (Traefik ignores an empty configuration
    and would keep serving the deleted routes). Files without the managed marker (an operator's own
    configuration) are left alone. Traefik's default certificate is written when missing
    (``domain/certificate.py``: without it every reload costs Traefik a new RSA key).
    """
    files.ensure()
    cleaned = files.clean_temp_files()
    sentinel_written = files.write_sentinel(render_sentinel(api_password))
    cert_written = ensure_default_certificate(files, default_certificate)
    async with sessionmaker() as session:
        active = await repo.active_routes(session)
        states = await cert_repo.host_states(session, "local", [r.route_id for r in active if r.tls])
    if tls is not None:  # the uploaded certificates first: the route files name them
        await sync_certificates(certs, active)
    # Stale files go first: Traefik re-reads the whole directory on each change, so once the last route
    # written is live, none of the deleted ones is served any more.
    wanted = {r.file_name for r in active}
    deleted = sum(files.delete(name) for name in files.managed_files() if name not in wanted)
    written = sum(files.write(r.file_name, render(r, tls, states.get(r.route_id))) for r in active)
    counts = {
        "routes": len(active),
        "written": written,
        "deleted": deleted,
        "temp_cleaned": cleaned,
        "sentinel_written": int(sentinel_written),
        "certificate_written": int(cert_written),
    }
    log.info("route files reconciled", **counts)
    return counts
