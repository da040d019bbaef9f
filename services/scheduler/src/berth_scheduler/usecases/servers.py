"""Servers: validates them (``cmd.server.validate``, answered by ``evt.server.validated``) and keeps the
directory of the servers rollouts run on from ``evt.server.changed`` (``berth_common.fleet``), and which of
them the server watcher reports down (``evt.server.unreachable`` until ``evt.server.back``, or the server's
removal): those are not contacted meanwhile (``domain/server_state.py``).

The probe (SSH, the Docker socket, the engine, the disk) runs before the transaction, so no database
connection waits on a slow server; the answer is then emitted in the transaction that records the
command's id, so a redelivered command probes again (harmless) but answers once. When the pinned host key
is refused, the key the server now shows is read once more at first contact and reported as offered, for
an admin to compare and accept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from berth_common import fleet, sealing, ssh_keys
from berth_common.bus.consumer import Delivery
from berth_common.catalogue import (
    ServerBack,
    ServerChanged,
    ServerCheck,
    ServerUnreachable,
    ServerValidated,
    ValidateServer,
    sealed_key_aad,
)
from berth_common.db import Transactions, Unit
from berth_common.logging import get_logger
from berth_common.records import record_of
from berth_scheduler.adapters import servers_down, tables
from berth_scheduler.domain import server_state as state
from berth_scheduler.domain import servers as dom

if TYPE_CHECKING:
    from berth_common.ssh import SshPool

log = get_logger(__name__)


@dataclass
class Servers:
    """The SSH client (asyncssh) is loaded with the first validation: a scheduler that manages no server
    does not carry it."""

    transactions: Transactions
    timeout_s: float = 10.0
    _pool: SshPool | None = field(default=None, init=False)

    @property
    def pool(self) -> SshPool:
        if self._pool is None:
            from berth_common.ssh import SshPool

            self._pool = SshPool()
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def changed(self, msg: ServerChanged, unit: Unit) -> None:
        """Keep the directory: the latest revision of each server (a connection made with an older key or
        address is dropped, the next use connects with the new one)."""
        if await fleet.record_change(unit.session, tables.servers, msg):
            if self._pool is not None:
                self._pool.forget(msg.server_id)
            if msg.state == "removed":  # a removed server's outage no longer matters
                await servers_down.put(unit.session, msg.server_id, None)
            log.info("server directory updated", server_id=msg.server_id, state=msg.state, revision=msg.revision)

    async def unreachable(self, msg: ServerUnreachable, unit: Unit) -> None:
        """The server watcher reports the server unreachable: deployments stop contacting it."""
        if msg.server_id is None:
            return
        current = await servers_down.get(unit.session, msg.server_id)
        down = state.after_unreachable(current, msg.server_id, msg.outage_id, msg.down_since, msg.error)
        await servers_down.put(unit.session, msg.server_id, down)
        log.warning("server known to be unreachable", server_id=msg.server_id, outage_id=msg.outage_id)

    async def back(self, msg: ServerBack, unit: Unit) -> None:
        """The server answers again: it is contacted again (its forwarded connection made anew)."""
        if msg.server_id is None:
            return
        current = await servers_down.get(unit.session, msg.server_id)
        await servers_down.put(unit.session, msg.server_id, state.after_back(current, msg.outage_id))
        if self._pool is not None:
            self._pool.forget(msg.server_id)
        log.info("server back", server_id=msg.server_id, outage_id=msg.outage_id)

    async def validate(self, msg: ValidateServer, delivery: Delivery) -> None:
        answer = await self.check(msg)

        async def record(unit: Unit) -> None:
            await unit.emit(answer, id=f"server-validated-{msg.server_id}-{msg.attempt}")

        await self.transactions.run(record, delivery=delivery)

    async def check(self, msg: ValidateServer) -> ServerValidated:
        """Probe the server and say what was found (never raises for a server that is down or wrong)."""
        from berth_common import ssh
        from berth_scheduler.adapters.server_probe import probe

        try:
            private_key = sealing.unseal(msg.private_key, sealed_key_aad(msg.server_id))
            target = ssh.SshTarget(msg.host, msg.port, msg.user, private_key, msg.host_key)
        except (sealing.SealingError, ValueError) as exc:
            return self._answer(
                msg, dom.ServerValidation("unreachable", [dom.Check("authentication", False, str(exc))])
            )
        # one connection per validation: a server is validated with the key and host key of this command
        self.pool.forget(msg.server_id)
        try:
            facts = await probe(self.pool, msg.server_id, target, timeout=self.timeout_s)
        finally:
            self.pool.forget(msg.server_id)
        offered: str | None = None
        if facts.error_kind == "host_key_changed" and msg.host_key is not None:
            try:
                offered = await ssh.first_contact(
                    ssh.SshTarget(msg.host, msg.port, msg.user, private_key), timeout=self.timeout_s
                )
            except ssh.SshError:
                offered = None
        validation = dom.evaluate(facts)
        log.info("server validated", server_id=msg.server_id, state=validation.state, reason=validation.reason)
        return self._answer(msg, validation, offered)

    @staticmethod
    def _answer(msg: ValidateServer, v: dom.ServerValidation, offered: str | None = None) -> ServerValidated:
        return record_of(
            ServerValidated,
            v,
            server_id=msg.server_id,
            team_id=msg.team_id,
            attempt=msg.attempt,
            reason=v.reason,
            checks=[ServerCheck(name=c.name, ok=c.ok, detail=c.detail) for c in v.checks],
            offered_host_key=offered,
            offered_fingerprint=ssh_keys.fingerprint(offered) if offered else None,
        )
