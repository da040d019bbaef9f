"""Swarms: forms (or adopts) one on a team's servers (``cmd.swarm.form``, answered by ``evt.swarm.formed``
or ``evt.swarm.failed``) and takes one apart on request (``cmd.swarm.dissolve``).

Every engine is reached through the connection factory on its SSH-forwarded socket (servers from the
scheduler's directory, ``tables.servers``). The manager gets ``POST /swarm/init`` unless it already
manages a Swarm; the worker join token is read from the manager, sealed at rest in ``swarms`` and used to
join every worker not in that Swarm yet; then the attachable overlay network is made. Every step looks
first, so forming twice (a redelivery, a restart halfway) gives the same Swarm. The work runs before the
transaction; the answer is emitted in the one that records the command's id. No token is ever in an
event, a log line or an error: what an engine says is scrubbed of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from berth_common import fleet
from berth_common.bus.consumer import Delivery
from berth_common.catalogue import DissolveSwarm, FormSwarm, SwarmFailed, SwarmFormed, SwarmNode
from berth_common.db import Transactions, Unit
from berth_common.docker import DockerEngines, DockerUnavailable
from berth_common.logging import get_logger
from berth_scheduler.adapters import tables
from berth_scheduler.adapters.sealing import Sealer
from berth_scheduler.adapters.swarm import SwarmEngine, SwarmError
from berth_scheduler.domain import swarm as bodies
from berth_scheduler.domain import swarms as dom
from berth_scheduler.domain.swarm_overlay import PROBE_LABEL
from berth_scheduler.usecases.servers import Servers

log = get_logger(__name__)
# SSH failures are ``berth_common.ssh.SshError`` (asyncssh is loaded with the first Swarm, not at start)
FAILURES: tuple[type[BaseException], ...] = (
    SwarmError,
    DockerUnavailable,
    fleet.ServerNotUsable,
    dom.SwarmProblem,
    OSError,
)


def failures() -> tuple[type[BaseException], ...]:
    from berth_common.ssh import SshError

    return (*FAILURES, SshError)


def token_place(swarm_id: str) -> str:
    return f"swarm/{swarm_id}/worker-token"


@dataclass(frozen=True)
class Formed:
    """What forming made: the answer, and the join token to keep sealed."""

    answer: SwarmFormed
    token: str


@dataclass
class Swarms:
    transactions: Transactions
    sealer: Sealer
    servers: Servers  # its SSH pool: one connection per server for validation, rollouts and Swarms
    engines: DockerEngines

    async def engine(self, record: fleet.ServerRecord) -> SwarmEngine:
        """The server's engine through the connection factory, on its SSH-forwarded socket."""
        from berth_common.docker.remote import connect_server

        engine = await connect_server(self.engines, self.servers.pool, record.id, fleet.target_of(record))
        assert engine.where.unix_path is not None
        return SwarmEngine(engine.where.unix_path)

    async def _records(self, team_id: str, ids: list[str]) -> list[fleet.ServerRecord]:
        async with self.transactions.sessionmaker() as s:
            found = [await fleet.server_of(s, tables.servers, i) for i in ids]
        out = []
        for server_id, record in zip(ids, found, strict=True):
            if record is None or record.team_id != team_id:
                raise dom.SwarmProblem(f"server {server_id} is not one of the team's servers")
            out.append(record)
        return out

    async def form(self, msg: FormSwarm, delivery: Delivery) -> None:
        token = ""
        try:
            formed = await self.carry_out(msg)
            answer: SwarmFormed | SwarmFailed = formed.answer
            token = formed.token
        except failures() as exc:
            reason = dom.scrub(str(exc), token) or type(exc).__name__
            answer = SwarmFailed(swarm_id=msg.swarm_id, team_id=msg.team_id, attempt=msg.attempt, reason=reason)
            log.info("swarm not formed", swarm_id=msg.swarm_id, reason=reason)

        async def record(unit: Unit) -> None:
            if isinstance(answer, SwarmFormed):
                await self._keep(unit, msg, answer, token)
            await unit.emit(answer, id=f"swarm-answer-{msg.swarm_id}-{msg.attempt}")

        await self.transactions.run(record, delivery=delivery)

    async def carry_out(self, msg: FormSwarm) -> Formed:
        manager, *workers = await self._records(msg.team_id, [msg.manager_server_id, *msg.worker_server_ids])
        mgr = await self.engine(manager)
        where = dom.standing(await mgr.info())
        if dom.manager_step(manager.name, where, msg.adopt) == "init":
            await mgr.init(bodies.init_body(dom.advertise_address(manager.host)))
            where = dom.standing(await mgr.info())
        token = await mgr.join_token()
        manager_addr = where.node_addr or dom.advertise_address(manager.host)
        try:
            members = {str(n.get("ID")) for n in await mgr.nodes()}
            for worker in workers:
                engine = await self.engine(worker)
                if dom.worker_step(worker.name, dom.standing(await engine.info()), members) == "join":
                    body = bodies.join_body(dom.advertise_address(worker.host), manager_addr, token)
                    await engine.join(body)
                    log.info("swarm worker joined", swarm_id=msg.swarm_id, server_id=worker.id)
            problem = dom.network_problem(await mgr.network(msg.network), msg.network)
            if problem:
                raise dom.SwarmProblem(problem)
            if await mgr.network(msg.network) is None:
                await mgr.create_network(bodies.overlay_body(msg.network))
            nodes = await mgr.nodes()
        except SwarmError as exc:
            raise SwarmError(dom.scrub(str(exc), token), exc.status) from None
        by_address = {r.host: r.id for r in (manager, *workers)}
        answer = SwarmFormed(
            swarm_id=msg.swarm_id,
            team_id=msg.team_id,
            attempt=msg.attempt,
            cluster_id=where.cluster_id,
            manager_node_id=where.node_id,
            network=msg.network,
            nodes=[SwarmNode(**n) for n in dom.nodes_view(nodes, by_address)],
        )
        log.info("swarm formed", swarm_id=msg.swarm_id, cluster_id=where.cluster_id, nodes=len(nodes))
        return Formed(answer, token)

    async def _keep(self, unit: Unit, msg: FormSwarm, answer: SwarmFormed, token: str) -> None:
        t = tables.swarms
        values: dict[str, Any] = {
            "id": msg.swarm_id,
            "team_id": msg.team_id,
            "manager_server_id": msg.manager_server_id,
            "worker_server_ids": list(msg.worker_server_ids),
            "cluster_id": answer.cluster_id,
            "manager_node_id": answer.manager_node_id,
            "network": answer.network,
            "worker_token": self.sealer.seal_value(token, token_place(msg.swarm_id)),
            "nodes": [n.model_dump() for n in answer.nodes],
            "attempt": msg.attempt,
        }
        stmt = insert(t).values(**values)
        await unit.session.execute(
            stmt.on_conflict_do_update(index_elements=[t.c.id], set_={k: stmt.excluded[k] for k in values if k != "id"})
        )

    async def dissolve(self, msg: DissolveSwarm, delivery: Delivery) -> None:
        """Workers leave, then the manager (its overlay probe removed first: ``domain/swarm_overlay.py``); a
        server already out of the Swarm (or gone) is skipped."""
        try:
            records = await self._records(msg.team_id, [*msg.worker_server_ids, msg.manager_server_id])
        except dom.SwarmProblem as exc:
            records = []
            log.info("swarm dissolved in part", swarm_id=msg.swarm_id, reason=str(exc))
        for server in records:
            try:
                engine = await self.engine(server)
                if server.id == msg.manager_server_id:
                    await engine.remove_labelled(PROBE_LABEL)
                await engine.leave(force=True)
            except failures() as exc:
                log.info("swarm node not left", swarm_id=msg.swarm_id, server_id=server.id, reason=str(exc))

        async def forget(unit: Unit) -> None:
            await unit.session.execute(sa.delete(tables.swarms).where(tables.swarms.c.id == msg.swarm_id))

        await self.transactions.run(forget, delivery=delivery)
