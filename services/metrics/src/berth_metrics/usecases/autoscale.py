"""Autoscaling: the policies the api announces, evaluated on every collection, and the scale commands.

Applies ``evt.application.autoscale_changed`` (the latest revision of each service's policy is kept) and
sends ``cmd.application.scale`` (trigger ``auto``) with the decision's reason in words. After each
collection, every autoscaled service gets one observation from the snapshot: how many replicas of one
deployment run and their average CPU or memory use; while two deployments' replicas run (a rollout) its
history starts again. The policy (``domain/autoscale.py``) decides; a decision is recorded with the
command in one transaction (the cooldown holds across restarts), and the scheduler answers it with
``evt.application.scaled``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_common.bus import Bus
from berth_common.catalogue import AutoscaleChanged, AutoscalePolicy, ScaleApplication
from berth_common.db import Unit
from berth_common.db.unit import run_unit
from berth_common.envelope import new_id
from berth_common.logging import get_logger
from berth_metrics.adapters import autoscale_repo
from berth_metrics.adapters.autoscale_repo import StoredPolicy
from berth_metrics.domain.autoscale import WINDOW_S, Decision, Observation, Policy, decide
from berth_metrics.domain.readings import Snapshot

log = get_logger(__name__)
Key = tuple[str, str]  # (application id, service)


def policy_of(stored: dict[str, object], window_s: float = WINDOW_S) -> Policy:
    p = AutoscalePolicy.model_validate(stored)
    if p.cpu_percent is not None:
        return Policy(p.min, p.max, "cpu", p.cpu_percent, p.cooldown_s, window_s=window_s)
    assert p.memory_percent is not None
    return Policy(p.min, p.max, "memory", p.memory_percent, p.cooldown_s, window_s=window_s)


def observe(snapshot: Snapshot, application_id: str, service: str, metric: str, now: float) -> Observation | None:
    """The service's replicas in the snapshot and their average; None while two deployments' replicas run."""
    mine = [
        r
        for r in snapshot.containers.values()
        if r.labels.get("app") == application_id and r.labels.get("service") == service
    ]
    if len({r.labels.get("deployment") for r in mine}) > 1:
        return None
    values = [v for r in mine if (v := (r.cpu_pct if metric == "cpu" else r.mem_pct)) is not None]
    return Observation(now, len(mine), sum(values) / len(values) if values else None)


@dataclass
class Autoscaler:
    bus: Bus
    sessionmaker: async_sessionmaker[AsyncSession]
    snapshot: Callable[[], Snapshot]
    window_s: float = WINDOW_S
    history: dict[Key, list[Observation]] = field(default_factory=dict)

    async def changed(self, msg: AutoscaleChanged, unit: Unit) -> None:
        policy = msg.policy.model_dump(mode="json") if msg.policy is not None else None
        kept = await autoscale_repo.record(
            unit.session, msg.application_id, msg.service, msg.team_id, policy, msg.revision
        )
        if kept:
            self.history.pop((msg.application_id, msg.service), None)
            log.info("autoscale policy kept", application_id=msg.application_id, service=msg.service, on=bool(policy))

    async def evaluate(self, now: float) -> list[ScaleApplication]:
        """Observe every autoscaled service and send the scale commands its policy decides; those sent."""
        async with self.sessionmaker() as s:
            stored = await autoscale_repo.active(s)
        keys = {(p.application_id, p.service) for p in stored}
        for gone in [k for k in self.history if k not in keys]:
            del self.history[gone]
        snapshot, sent = self.snapshot(), []
        for p in stored:
            policy = policy_of(p.policy, self.window_s)
            seen = observe(snapshot, p.application_id, p.service, policy.metric, now)
            key = (p.application_id, p.service)
            if seen is None or seen.replicas == 0:
                self.history.pop(key, None)
                continue
            history = [o for o in self.history.get(key, []) if o.at >= now - 2 * policy.window_s] + [seen]
            self.history[key] = history
            decision = decide(policy, history, now, p.last_change_at)
            if decision is not None:
                sent.append(await self._send(p, decision, now))
                self.history.pop(key, None)
        return sent

    async def _send(self, p: StoredPolicy, decision: Decision, now: float) -> ScaleApplication:
        command = ScaleApplication(
            application_id=p.application_id,
            team_id=p.team_id,
            request_id=new_id(),
            services={p.service: decision.replicas},
            trigger="auto",
            reason=decision.reason[:500],
        )

        async def body(unit: Unit) -> None:
            await autoscale_repo.changed_at(unit.session, p.application_id, p.service, now)
            await unit.emit(command, id=f"autoscale-{command.request_id}")

        await run_unit(self.bus, self.sessionmaker, body)
        log.info("autoscale decided", application_id=p.application_id, service=p.service, reason=decision.reason)
        return command
