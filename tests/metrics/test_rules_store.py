"""Rules through the query handlers (validation, team scoping) and alert state that survives a restart
of the service, against real Postgres and nats-server."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import nats

from berth_common.bus import Bus, subscriptions_confirmed
from berth_metrics.domain.lifecycle import LifecycleTracker
from berth_metrics.domain.readings import ContainerReading, Snapshot
from berth_metrics.domain.series import Retention
from berth_metrics.usecases.alerts import Evaluator
from berth_metrics.usecases.queries import Deps, alert_list, rule_create, rule_delete, rule_list, rule_update

NOW = datetime.now(UTC)
RULE = {
    "name": "hot",
    "target_kind": "container",
    "target_id": "web-1",
    "metric": "cpu_pct",
    "threshold": 80,
    "for_s": 0,
}


def evaluator(sessionmaker, bus=None, cpu: list[float | None] | None = None) -> Evaluator:
    def snap() -> Snapshot:
        value = cpu[0] if cpu else None
        if value is None:
            return Snapshot()
        reading = ContainerReading("a" * 64, "web-1", "img", {"app": "web"}, NOW, value, 1, 10, 0, 0, 0, 0, 0, None)
        return Snapshot(containers={reading.container_id: reading})

    return Evaluator(bus=bus, sessionmaker=sessionmaker, tracker=LifecycleTracker(), snapshot=snap, server="vm1")


async def test_rule_queries_validate_and_scope_by_team(sessionmaker):
    deps = Deps(sessionmaker, evaluator(sessionmaker), Retention(timedelta(1), timedelta(7), timedelta(90)), 10)
    created = await rule_create(deps, {"team_id": "t1", "rule": RULE})
    assert created.problem is None and created.rule.metric == "cpu_pct" and created.rule.team_id == "t1"
    assert [r.id for r in deps.evaluator.rules] == [created.rule.id]  # the evaluator took it at once

    bad = await rule_create(deps, {"team_id": "t1", "rule": RULE | {"metric": "disk_pct"}})
    assert bad.problem.status == 422 and bad.problem.field == "rule"
    bad = await rule_create(deps, {"team_id": "t1", "rule": RULE | {"threshold": -1}})
    assert bad.problem.status == 422 and bad.problem.field == "rule.threshold"
    bad = await rule_create(deps, {"team_id": "t1", "rule": RULE | {"target_id": "../etc"}})
    assert bad.problem.field == "rule.target_id"

    other = await rule_update(deps, {"team_id": "t2", "rule_id": created.rule.id, "rule": RULE | {"threshold": 10}})
    assert other.problem.status == 404 and other.problem.field == "rule_id"
    updated = await rule_update(deps, {"team_id": "t1", "rule_id": created.rule.id, "rule": RULE | {"threshold": 90}})
    assert updated.rule.threshold == 90 and deps.evaluator.rules[0].spec.threshold == 90
    assert [r.id for r in (await rule_list(deps, {"team_id": "t1"})).rules] == [created.rule.id]
    assert (await rule_list(deps, {"team_id": "t2"})).rules == []
    assert (await rule_delete(deps, {"team_id": "t2", "rule_id": created.rule.id})).problem.status == 404
    assert (await rule_delete(deps, {"team_id": "t1", "rule_id": created.rule.id})).deleted is True
    assert deps.evaluator.rules == [] and (await alert_list(deps, {"team_id": "t1"})).alerts == []


async def test_alert_state_survives_a_restart_without_a_second_raise(sessionmaker, nats_server):
    bus = Bus("metrics", nats_server.url)
    await bus.connect()
    nc = await nats.connect(nats_server.url)
    got: list[dict] = []

    async def on(msg):
        got.append(json.loads(msg.data))

    await nc.subscribe("evt.alert.>", cb=on)
    await subscriptions_confirmed(nc)
    cpu = [95.0]
    first = evaluator(sessionmaker, bus, cpu)
    deps = Deps(sessionmaker, first, Retention(timedelta(1), timedelta(7), timedelta(90)), 10)
    rule_id = (await rule_create(deps, {"team_id": "t1", "rule": RULE | {"resolve_for_s": 0}})).rule.id
    assert [t.kind for t in await first.evaluate(NOW)] == ["raised"]
    assert await first.evaluate(NOW + timedelta(seconds=10)) == []

    second = evaluator(sessionmaker, bus, cpu)  # the service restarted: state comes from the database
    await second.load()
    assert await second.evaluate(NOW + timedelta(seconds=20)) == []
    cpu[0] = 50.0
    assert [t.kind for t in await second.evaluate(NOW + timedelta(seconds=30))] == ["resolved"]
    for _ in range(100):
        if len(got) >= 2:
            break
        await asyncio.sleep(0.05)
    assert [e["type"] for e in got] == ["evt.alert.raised", "evt.alert.resolved"]
    raised, resolved = got[0]["data"], got[1]["data"]
    assert raised["alert_id"] == resolved["alert_id"] and raised["rule_id"] == rule_id
    assert (raised["value"], resolved["value"], resolved["peak"]) == (95.0, 50.0, 95.0)
    assert resolved["duration_s"] == 30.0 and raised["target"] == "container web-1"
    assert raised["labels"] == {"container": "web-1", "app": "web"}
    alerts = (await alert_list(deps, {"team_id": "t1"})).alerts
    assert [(a.status, a.value, a.peak) for a in alerts] == [("resolved", 50.0, 95.0)]
    await bus.close()
    await nc.close()
