"""The built-in "database down" alert: no rule is made, every database's container is watched.

Pure: which readings count as down (restarting, failing its health check, restarted since the last
collection), which containers are databases, and the hysteresis (raised after the setting's time down
without an up reading between, resolved at the first up reading or when the container is gone). End to end:
the metrics service on a real engine, a crash-looping ``berth-db-<id>`` container raises one
``evt.alert.raised`` for its team, resolved once it runs again; a database stopped on purpose raises nothing.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from berth_common.catalogue import BUILTIN_DATABASE_DOWN, AlertList, AlertListReply, AlertRuleSpec
from berth_metrics.domain import database_down as dom
from berth_metrics.domain.readings import ContainerReading, Snapshot, TargetValue
from berth_metrics.domain.rules import AlertState, step
from berth_notifier.domain.notice import _alert_sentence
from tests.metrics.service import eventually, metrics_service
from tests.support.images import DOCKER, TEST_LABEL, busybox_image, remove_container

DB = "a" * 32
T0 = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def reading(
    name: str = f"berth-db-{DB}",
    *,
    app: str = DB,
    team: str | None = "team-1",
    restarts: int = 0,
    restarting: bool = False,
    health: str | None = None,
) -> ContainerReading:
    labels = {"app": app, **({"team": team} if team else {})}
    return ContainerReading(
        container_id="c" + name,
        name=name,
        image="postgres:15",
        labels=labels,
        at=T0,
        cpu_pct=0.0,
        mem_used=0,
        mem_limit=0,
        net_rx=0,
        net_tx=0,
        blk_read=0,
        blk_write=0,
        restarts=restarts,
        health=health,
        restarting=restarting,
    )


def snap(*readings: ContainerReading) -> Snapshot:
    return Snapshot(containers={r.container_id: r for r in readings})


def test_a_database_s_container_is_down_when_restarting_unhealthy_or_restarted_since_the_last_collection() -> None:
    assert not dom.is_down(reading(), None) and not dom.is_down(reading(restarts=2), 2)
    assert dom.is_down(reading(restarting=True), None)
    assert dom.is_down(reading(health="unhealthy"), 0)
    assert not dom.is_down(reading(health="healthy"), 0) and not dom.is_down(reading(health="starting"), 0)
    assert dom.is_down(reading(restarts=3), 2)  # a crash loop seen while it briefly runs


def test_only_berth_database_containers_are_watched() -> None:
    assert dom.database_of(reading()) == DB
    assert dom.database_of(reading(f"berth-db-{DB}-proxy")) is None  # the TCP proxy is not the database
    assert dom.database_of(reading(app="b" * 32)) is None  # the name and the label disagree
    assert dom.database_of(reading(team=None)) is None  # no team to tell
    assert dom.database_of(reading("berth-web-1", app="web")) is None

    found, counts = dom.readings(snap(reading(restarts=1), reading("berth-web-1", app="web")), {})
    assert found == [
        dom.DatabaseReading(
            DB, "team-1", f"cberth-db-{DB}", False, {"app": DB, "container": f"berth-db-{DB}", "kind": "database"}
        )
    ]
    assert counts == {f"cberth-db-{DB}": 1}
    again, _ = dom.readings(snap(reading(restarts=2)), counts)
    assert again[0].down  # restarted since the last collection
    labels = found[0].labels
    assert dom.values(found, [DB, "f" * 32]) == [
        TargetValue(DB, 0.0, labels),
        TargetValue("f" * 32, None, {"app": "f" * 32}),
    ]


def test_raised_after_the_setting_s_time_down_and_resolved_at_the_first_up_reading() -> None:
    limits = dom.thresholds(300)
    state, tr = step(limits, AlertState(), 1.0, T0)
    assert state.status == "pending" and tr is None
    state, tr = step(limits, state, 1.0, T0 + timedelta(seconds=299))
    assert tr is None
    state, tr = step(limits, state, 1.0, T0 + timedelta(seconds=300))
    assert state.status == "firing" and tr is not None and tr.kind == "raised" and tr.since == T0
    state, tr = step(limits, state, 0.0, T0 + timedelta(seconds=310))
    assert state.status == "ok" and tr is not None and tr.kind == "resolved"
    # an up reading in between starts the wait again; a database gone (stopped, removed) resolves too
    state, _ = step(limits, AlertState(), 1.0, T0)
    state, _ = step(limits, state, 0.0, T0 + timedelta(seconds=200))
    assert state.status == "ok"
    firing, _ = step(limits, AlertState(), 1.0, T0)
    firing, _ = step(limits, firing, 1.0, T0 + timedelta(seconds=400))
    gone, tr = step(limits, firing, None, T0 + timedelta(seconds=500))
    assert gone.status == "ok" and tr is not None and tr.kind == "resolved" and tr.value is None


def test_no_user_rule_may_use_the_built_in_metric() -> None:
    with pytest.raises(ValidationError, match="built in"):
        AlertRuleSpec(target_kind="app", target_id="*", metric="down", threshold=1)


def test_the_notification_says_how_long_the_database_was_down_and_that_it_runs_again() -> None:
    data = {"rule_name": "database down", "target": f"database {DB}", "metric": "down", "value": 300.0}
    assert _alert_sentence("evt.alert.raised", data) == f"database down: database {DB} has been down for 5 min"
    up = {**data, "value": 0.0}
    assert _alert_sentence("evt.alert.resolved", up) == f"database down: database {DB} is running again"
    gone = {**data, "value": None}
    assert _alert_sentence("evt.alert.resolved", gone) == f"database down: database {DB} is gone, the alert is over"


# --- end to end --------------------------------------------------------------------------------------------


def database_container(database_id: str, control: Path, *, team: str = "team-1") -> str:
    """A stand-in for a database's container: it crashes until ``control/up`` exists, then runs."""
    script = "test -f /ctl/up && exec sleep 3600; sleep 0.3; exit 1"
    argv = [DOCKER, "run", "-d", "--name", f"berth-db-{database_id}", "--label", TEST_LABEL]
    argv += ["--label", f"berth.app={database_id}", "--label", f"berth.team={team}", "--label", "berth.kind=database"]
    argv += ["--restart", "unless-stopped", "-v", f"{control}:/ctl", busybox_image(), "sh", "-c", script]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout.strip()


@pytest.mark.docker
@pytest.mark.slow
async def test_a_database_down_for_the_setting_s_time_raises_one_alert_resolved_once_it_runs(nats_server, database):
    crashing, stopped = uuid.uuid4().hex, uuid.uuid4().hex
    # A team of its own: the service watches the whole engine, where other tests' databases run (and may turn
    # unhealthy on a loaded machine); only this test's alerts are counted.
    team = f"team-{crashing[:8]}"
    made: list[str] = []
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        Path(b, "up").touch()
        async with metrics_service(nats_server.url, database, metrics_database_down_after_s=3.0) as running:
            try:
                made.append(database_container(stopped, Path(b), team=team))
                made.append(database_container(crashing, Path(a), team=team))
                await asyncio.sleep(2)
                subprocess.run([DOCKER, "stop", "-t", "1", made[0]], capture_output=True, check=True, timeout=60)

                def raised() -> list[dict]:
                    return running.of_type("evt.alert.raised", rule_id=BUILTIN_DATABASE_DOWN, team_id=team)

                first = (await eventually(raised, 60))[0]
                assert first["target_id"] == crashing and first["target_kind"] == "app" and first["metric"] == "down"
                assert first["team_id"] == team and first["rule_name"] == "database down"
                assert first["target"] == f"database {crashing}" and first["threshold"] == 3.0
                assert first["value"] >= 3.0 and first["server"] == "test-vm"
                assert first["labels"] == {"app": crashing, "container": f"berth-db-{crashing}", "kind": "database"}

                Path(a, "up").touch()  # the next restart runs for good
                resolved = (
                    await eventually(
                        lambda: running.of_type("evt.alert.resolved", rule_id=BUILTIN_DATABASE_DOWN, team_id=team), 90
                    )
                )[0]
                assert resolved["alert_id"] == first["alert_id"] and resolved["value"] == 0.0
                assert resolved["reason"] == f"database {crashing} is running again"
                assert [e["target_id"] for e in raised()] == [crashing]  # one alert; the stopped one raised none

                listed = await running.bus.request("metrics", "alert.list", AlertList(team_id=team), AlertListReply)
                assert [(x.alert_id, x.metric, x.status) for x in listed.alerts] == [
                    (first["alert_id"], "down", "resolved")
                ]
            finally:
                for cid in made:
                    remove_container(cid)
