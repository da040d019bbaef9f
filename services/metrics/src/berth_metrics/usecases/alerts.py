"""Alert evaluation: after every collection each enabled rule's targets take one hysteresis step; a raise
or a resolve is stored with its event (``evt.alert.raised``, ``evt.alert.resolved``) in one transaction
(outbox), so it is announced exactly once."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_common.bus import Bus
from berth_common.catalogue import AlertRaised, AlertResolved
from berth_common.db import Unit
from berth_common.db.unit import run_unit
from berth_common.logging import get_logger
from berth_metrics.adapters import rules_repo
from berth_metrics.adapters.rules_repo import StoredRule
from berth_metrics.domain.lifecycle import LifecycleTracker
from berth_metrics.domain.readings import Snapshot, TargetValue, rule_values
from berth_metrics.domain.rules import UNITS, AlertState, Thresholds, Transition, default_margin, step

log = get_logger(__name__)
Key = tuple[str, str]  # (rule id, target instance)


def thresholds(rule: StoredRule, margin_fraction: float) -> Thresholds:
    spec = rule.spec
    margin = spec.margin if spec.margin is not None else default_margin(spec.metric, spec.threshold, margin_fraction)
    resolve_for = spec.resolve_for_s if spec.resolve_for_s is not None else spec.for_s
    return Thresholds(threshold=spec.threshold, margin=margin, for_s=spec.for_s, resolve_for_s=resolve_for)


def alert_id(rule_id: str, instance: str, since: datetime) -> str:
    return hashlib.sha256(f"{rule_id}|{instance}|{since.isoformat()}".encode()).hexdigest()[:32]


def _fmt(value: float | None, metric: str) -> str:
    return "no reading" if value is None else f"{value:.4g}{UNITS.get(metric, '')}"


@dataclass
class Evaluator:
    bus: Bus
    sessionmaker: async_sessionmaker[AsyncSession]
    tracker: LifecycleTracker
    snapshot: Callable[[], Snapshot]
    server: str
    margin_fraction: float = 0.1
    rules: list[StoredRule] = field(default_factory=list)
    states: dict[Key, tuple[AlertState, str | None]] = field(default_factory=dict)

    async def load(self) -> None:
        async with self.sessionmaker() as session:
            self.rules = await rules_repo.all_rules(session)
            self.states = await rules_repo.load_states(session)

    async def reload_rules(self) -> None:
        """After a rule changed: the next evaluation uses the new rules (states of deleted rules go)."""
        async with self.sessionmaker() as session:
            self.rules = await rules_repo.all_rules(session)

    async def evaluate(self, now: datetime) -> list[Transition]:
        transitions = []
        snap = self.snapshot()
        restarts = self.tracker.restarts_since(now - _max_window(self.rules))
        live = {r.id for r in self.rules}
        for key in [k for k in self.states if k[0] not in live]:
            del self.states[key]
        for rule in self.rules:
            if not rule.spec.enabled:
                continue
            spec = rule.spec
            known = [inst for (rid, inst) in self.states if rid == rule.id]
            values = rule_values(
                kind=spec.target_kind,
                target_id=spec.target_id,
                metric=spec.metric,
                team_id=rule.team_id,
                window_s=spec.window_s,
                snapshot=snap,
                restarts=restarts,
                now=now,
                known=known,
            )
            limits = thresholds(rule, self.margin_fraction)
            for target in values:
                done = await self._step(rule, limits, target, now)
                if done is not None:
                    transitions.append(done)
        return transitions

    async def _step(
        self, rule: StoredRule, limits: Thresholds, target: TargetValue, now: datetime
    ) -> Transition | None:
        key = (rule.id, target.instance)
        state, current_id = self.states.get(key, (AlertState(), None))
        new, transition = step(limits, state, target.value, now)
        if transition is None and new.status == state.status:
            if new.status != "ok":
                self.states[key] = (new, current_id)
            return None
        if transition is not None and transition.kind == "raised":
            current_id = alert_id(rule.id, target.instance, transition.since)

        async def body(unit: Unit) -> None:
            await rules_repo.save_state(unit.session, rule.id, target.instance, new, current_id)
            if transition is not None and current_id is not None:
                await self._announce(unit, rule, limits, target, transition, current_id)

        await run_unit(self.bus, self.sessionmaker, body)
        if new.status == "ok":
            self.states.pop(key, None)
        else:
            self.states[key] = (new, current_id)
        return transition

    async def _announce(
        self, unit: Unit, rule: StoredRule, limits: Thresholds, target: TargetValue, tr: Transition, aid: str
    ) -> None:
        spec = rule.spec
        what = f"{spec.target_kind} {target.instance}"
        common: dict[str, Any] = {
            "alert_id": aid,
            "rule_id": rule.id,
            "rule_name": spec.name,
            "team_id": rule.team_id,
            "target_kind": spec.target_kind,
            "target_id": target.instance,
            "target": what,
            "metric": spec.metric,
            "threshold": spec.threshold,
            "server": self.server,
            "labels": target.labels,
            "since": tr.since,
            "raised_at": tr.raised_at,
            "resolve_below": limits.lower,
        }
        metric = spec.metric
        if tr.kind == "raised":
            assert tr.value is not None
            window = f" within {spec.window_s:g}s" if metric == "restarts" else f" for {spec.for_s:g}s"
            reason = f"{metric} of {what} is {_fmt(tr.value, metric)}, above {_fmt(spec.threshold, metric)}{window}"
            event = AlertRaised(
                **common,
                value=tr.value,
                for_s=spec.for_s,
                window_s=spec.window_s if metric == "restarts" else None,
                reason=reason,
            )
            await rules_repo.record_raised(unit.session, event, peak=tr.peak)
            await unit.emit(event, id=f"alert-raised-{aid}")
            log.info("alert raised", rule=rule.id, target=what, value=tr.value)
        else:
            reason = (
                f"{metric} of {what} is {_fmt(tr.value, metric)}, at or below {_fmt(limits.lower, metric)} "
                f"for {limits.resolve_for_s:g}s"
            )
            await rules_repo.record_resolved(unit.session, aid, tr.at, tr.value, tr.peak)
            resolved = AlertResolved(
                **common,
                value=tr.value,
                peak=tr.peak,
                resolved_at=tr.at,
                duration_s=(tr.at - tr.raised_at).total_seconds(),
                reason=reason,
            )
            await unit.emit(resolved, id=f"alert-resolved-{aid}")
            log.info("alert resolved", rule=rule.id, target=what, value=tr.value)


def _max_window(rules: list[StoredRule]) -> timedelta:
    return timedelta(seconds=max((r.spec.window_s for r in rules), default=0.0))
