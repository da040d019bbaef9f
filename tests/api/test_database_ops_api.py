"""A database run like an application, through the api: minor-version upgrades with a backup first (the
saga on the real api and bus, the scheduler's part played by the test, an api restart in the middle), its
logs from the REAL scheduler, its metrics and alert rules from the REAL metrics service; roles, the 422s and
409s naming why, and another team's database answered 404."""

from __future__ import annotations

import json
from typing import Any

import pytest

from berth_common import dbengines, sealing
from berth_common.bus import Bus
from berth_common.catalogue import (
    BackupFailed,
    BackupSucceeded,
    DatabaseUpgraded,
    DatabaseUpgradeFailed,
)
from tests.api.conftest import start_api
from tests.api.test_backups_api import _database, _s3, _until
from tests.api.test_databases_api import DatabaseDouble
from tests.api.test_metrics_api import eventually
from tests.api.test_notifications_api import problem
from tests.metrics.service import containers, metrics_service, run_busybox

UPGRADE = "cmd.database.upgrade"


@pytest.fixture
async def cmds(nats_server, api):
    backups = await DatabaseDouble(nats_server.url, "cmd.backup.>", "double--backups").start()
    databases = await DatabaseDouble(nats_server.url).start()
    yield backups, databases
    for double in (backups, databases):
        await double.stop()


async def _upgrade(client, headers, db_id: str, **body: Any) -> Any:
    return await client.post(f"/v1/databases/{db_id}/upgrade", headers=headers, json=body)


async def _upgrades(client, headers, db_id: str) -> list[dict[str, Any]]:
    r = await client.get(f"/v1/databases/{db_id}/upgrades", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def _upgrade_state(client, headers, db_id: str, upgrade_id: str, state: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        got = {u["id"]: u for u in await _upgrades(client, headers, db_id)}[upgrade_id]
        return got if got["state"] == state else None

    return await eventually(found, 10, 0.05)


def _succeeded(backup_cmd: Any) -> BackupSucceeded:
    data = backup_cmd.data
    return BackupSucceeded(
        backup_id=data["backup_id"],
        team_id=data["team_id"],
        database_id=data["database_id"],
        engine="postgresql",
        database="orders",
        compression="gzip",
        objects=[],
        duration_s=1.0,
    )


async def test_an_upgrade_waits_for_its_backup_and_moves_the_version_on(
    client, members, cmds, api, api_settings, nats_server
):
    backups, databases = cmds
    db = await _database(client, members.developer, databases)
    dest = (await client.post("/v1/backup-destinations", headers=members.admin, json=_s3())).json()

    # Roles, then what is not a minor upgrade (the field named, the reason given).
    problem(await _upgrade(client, members.viewer, db["id"], version="15.9"), 403)
    problem(await _upgrade(client, members.other, db["id"], version="15.9"), 404)
    for version, why in (
        ("16", "major upgrades need a dump and a restore"),
        ("14.15", "major upgrades need a dump and a restore"),
        ("15", "runs PostgreSQL 15 already"),
        ("15.99", "is not offered"),
    ):
        body = problem(await _upgrade(client, members.developer, db["id"], version=version), 422)
        assert body["errors"][0]["loc"] == "/body/version" and why in body["errors"][0]["detail"], body
    # No destination named and no schedule: a backup destination is needed; skipping it is for admins.
    assert (
        "backup destination is needed"
        in problem(await _upgrade(client, members.developer, db["id"], version="15.9"), 409)["detail"]
    )
    problem(await _upgrade(client, members.developer, db["id"], version="15.9", skip_backup=True), 403)
    body = problem(await _upgrade(client, members.developer, db["id"], version="15.9", destinations=["f" * 32]), 422)
    assert body["errors"][0]["loc"] == "/body/destinations/0"

    # The backup is sent first; nothing else may change the database meanwhile.
    r = await _upgrade(client, members.developer, db["id"], version="15.9", destinations=[dest["id"]])
    assert r.status_code == 202, r.text
    upgrade = r.json()
    assert (upgrade["state"], upgrade["from_version"], upgrade["to_version"]) == ("backing_up", "15", "15.9")
    [(_, _, backup_cmd)] = await backups.wait_for("cmd.backup.start")
    assert backup_cmd.data["backup_id"] == upgrade["backup_id"] and backup_cmd.data["database_id"] == db["id"]
    assert not [c for c in databases.commands if c[0] == UPGRADE]
    assert "under way" in problem(await _upgrade(client, members.developer, db["id"], version="15.10"), 409)["detail"]
    problem(await client.post(f"/v1/databases/{db['id']}/restart", headers=members.developer), 409)

    # The api stops before the backup's answer and starts again: the saga goes on from its row.
    await api.shutdown()
    await backups.bus.publish(_succeeded(backup_cmd))
    again = await start_api(api_settings)
    try:
        [(_, _, sent)] = await databases.wait_for(UPGRADE, timeout=30)
        assert sent.data["request_id"] == upgrade["id"]
        assert (sent.data["from_version"], sent.data["from_image"]) == ("15", "postgres:15")
        assert (sent.data["spec"]["version"], sent.data["spec"]["image"]) == ("15.9", "postgres:15.9")
        assert sealing.is_sealed(sent.data["spec"]["password"])  # sealed on the wire, as every database command
        await _upgrade_state(client, members.viewer, db["id"], upgrade["id"], "upgrading")

        answer = {"database_id": db["id"], "team_id": sent.data["spec"]["team_id"], "request_id": upgrade["id"]}
        versions = {"from_version": "15", "to_version": "15.9"}
        await databases.bus.publish(DatabaseUpgraded(**answer, **versions, image="postgres:15.9"))
        done = await _upgrade_state(client, members.viewer, db["id"], upgrade["id"], "succeeded")
        assert done["finished_at"] is not None and done["backup_skipped"] is False
        assert (await client.get(f"/v1/databases/{db['id']}", headers=members.viewer)).json()["version"] == "15.9"

        # A failed backup fails the upgrade and sends nothing.
        r = await _upgrade(client, members.developer, db["id"], version="15.10", destinations=[dest["id"]])
        failing = r.json()
        [_, (_, _, second)] = await backups.wait_for("cmd.backup.start", 2)
        data = second.data
        await backups.bus.publish(
            BackupFailed(
                backup_id=data["backup_id"],
                team_id=data["team_id"],
                database_id=db["id"],
                engine="postgresql",
                reason="the bucket does not exist",
            )
        )
        failed = await _upgrade_state(client, members.viewer, db["id"], failing["id"], "failed")
        assert failed["reason"] == "the backup taken first failed, nothing was upgraded: the bucket does not exist"
        assert len([c for c in databases.commands if c[0] == UPGRADE]) == 1

        # An admin skips the backup (audited): the upgrade is sent at once; the scheduler rolls it back.
        r = await _upgrade(client, members.admin, db["id"], version="15.10", skip_backup=True)
        assert r.status_code == 202 and r.json()["state"] == "upgrading" and r.json()["backup_skipped"] is True
        [*_, (_, _, third)] = await databases.wait_for(UPGRADE, 2)
        assert (third.data["from_version"], third.data["spec"]["version"]) == ("15.9", "15.10")
        answer["request_id"] = r.json()["id"]
        await databases.bus.publish(
            DatabaseUpgradeFailed(
                **answer,
                from_version="15.9",
                to_version="15.10",
                reason="15.10 did not start, 15.9 runs again on the same data",
                rolled_back=True,
                running_version="15.9",
            )
        )
        rolled = await _upgrade_state(client, members.viewer, db["id"], r.json()["id"], "failed")
        assert rolled["rolled_back"] is True and "runs again" in rolled["reason"]
        assert (await client.get(f"/v1/databases/{db['id']}", headers=members.viewer)).json()["version"] == "15.9"
        audit = (await client.get("/v1/audit", headers=members.admin, params={"method": "POST"})).json()
        skipped = [a for a in audit if a["action"] == "POST /v1/databases/{database_id}/upgrade" and a["status"] == 202]
        assert any(a["fields"] == ["skip_backup", "version"] for a in skipped), skipped
        assert next(u["id"] for u in await _upgrades(client, members.viewer, db["id"])) == answer["request_id"]
        problem(await client.get(f"/v1/databases/{db['id']}/upgrades", headers=members.other), 404)

        # A stopped database is not upgraded (the backup and the readiness check need it running).
        await client.post(f"/v1/databases/{db['id']}/stop", headers=members.developer)
        [*_, (_, _, stop)] = await databases.wait_for("cmd.database.stop")
        await databases.changed(stop, "stopped")
        await _until(client, members.viewer, f"/v1/databases/{db['id']}", "stopped")
        body = problem(await _upgrade(client, members.admin, db["id"], version="15.10", skip_backup=True), 409)
        assert "stopped" in body["detail"]
    finally:
        await again.shutdown()


async def test_the_engines_name_their_minor_versions(client, members):
    engines = {e["name"]: e for e in (await client.get("/v1/databases/engines", headers=members.viewer)).json()}
    assert engines["postgresql"]["minor_versions"][:3] == ["17.2", "17.1", "16.6"]
    assert "10.11.10" in engines["mariadb"]["minor_versions"]


async def test_the_schedule_destinations_are_used_when_none_are_named(client, members, cmds):
    backups, databases = cmds
    db = await _database(client, members.developer, databases)
    dest = (await client.post("/v1/backup-destinations", headers=members.admin, json=_s3())).json()
    schedule = {"cron": "0 3 * * *", "timezone": "Europe/Berlin", "destinations": [dest["id"]], "retention": {}}
    r = await client.put(f"/v1/databases/{db['id']}/backup-schedule", headers=members.admin, json=schedule)
    assert r.status_code in (200, 201), r.text
    r = await _upgrade(client, members.developer, db["id"], version="15.10")
    assert r.status_code == 202 and r.json()["state"] == "backing_up", r.text
    [(_, _, cmd)] = await backups.wait_for("cmd.backup.start")
    assert [d["bucket"] for d in cmd.data["destinations"]] == ["berth-backups"]


@pytest.mark.slow
@pytest.mark.docker
async def test_logs_come_from_the_scheduler_for_the_teams_database_only(client, members, nats_server, database, api):
    from berth_common.bus.streams import CMD_STREAM
    from berth_common.db.provision import provision
    from berth_scheduler.settings import SchedulerSettings
    from tests.api.test_databases_api import DURABLE
    from tests.scheduler.platform import Scheduler

    databases = await DatabaseDouble(nats_server.url).start()  # plays the scheduler until the real one runs
    db = await _database(client, members.developer, databases)
    empty = await _database(client, members.developer, databases, name="empty")
    await databases.stop()
    bus = Bus("test", nats_server.url)
    await bus.connect()
    await bus.js.delete_consumer(CMD_STREAM, DURABLE)  # the real scheduler takes cmd.database.* from now on
    await bus.close()
    team = (await client.get("/v1/me", headers=members.developer)).json()["team"]["id"]
    urls = await provision(database, "test-secret", ("scheduler",))
    settings = SchedulerSettings(
        nats_url=nats_server.url, database_url=urls["scheduler"], secret_key="test-secret", http_port=0
    )
    scheduler = await Scheduler(settings).start()
    script = "echo 'LOG:  database system is ready'; echo 'WARNING:  on stderr' >&2; exec sleep 600"
    async with containers() as made:
        name = dbengines.container_name(db["id"])  # what the scheduler made for the database, played by busybox
        made.append(
            run_busybox(
                "--name", name, labels={"berth.team": team, "berth.app": db["id"]}, command=["sh", "-c", script]
            )
        )
        try:
            url = f"/v1/databases/{db['id']}/logs"

            async def lines() -> list[dict[str, Any]] | None:
                r = await client.get(url, headers=members.viewer, params={"tail": 10})
                if r.status_code == 503:  # the scheduler still starting
                    return None
                assert r.status_code == 200, r.text
                got = r.json()["lines"]
                return got if len(got) == 2 else None

            got = await eventually(lines, 30)
            assert sorted((x["stream"], x["line"]) for x in got) == [
                ("stderr", "WARNING:  on stderr"),
                ("stdout", "LOG:  database system is ready"),
            ]
            assert all(x["time"] for x in got)
            r = await client.get(url, headers=members.viewer, params={"tail": 1})
            assert len(r.json()["lines"]) == 1
            assert (
                problem(await client.get(url, headers=members.viewer, params={"tail": 0}), 422)["errors"][0]["loc"]
                == "/query/tail"
            )
            problem(await client.get(url, headers=members.other), 404)
            # A database of the team without a container: 404 saying so.
            body = problem(await client.get(f"/v1/databases/{empty['id']}/logs", headers=members.viewer), 404)
            assert "no container" in body["detail"]
        finally:
            await scheduler.stop()


@pytest.mark.slow
@pytest.mark.docker
async def test_metrics_and_alert_rules_of_a_database(client, members, cmds, nats_server, database, monkeypatch):
    monkeypatch.setenv("BERTH_METRICS_SERVER_NAME", "test-vm")
    _, databases = cmds
    db = await _database(client, members.developer, databases)
    idle = await _database(client, members.developer, databases, name="idle")
    theirs = await _database(client, members.other, databases, name="theirs")
    team = (await client.get("/v1/me", headers=members.developer)).json()["team"]["id"]
    async with metrics_service(nats_server.url, database) as running, containers() as made:
        labels = {"berth.team": team, "berth.app": db["id"], "berth.kind": "database"}
        cid = run_busybox("--memory", "64m", labels=labels, command=["sleep", "600"])
        made.append(cid)
        url = f"/v1/databases/{db['id']}/metrics"

        async def sampled() -> dict[str, Any] | None:
            r = await client.get(url, headers=members.viewer, params={"step": 1, "metric": ["cpu_pct", "mem_pct"]})
            assert r.status_code == 200, r.text
            return r.json() if {s["metric"] for s in r.json()["series"]} == {"cpu_pct", "mem_pct"} else None

        body = await eventually(sampled, 60)
        assert (body["target_kind"], body["target_id"]) == ("database", db["id"])
        assert {s["key"] for s in body["series"]} == {cid} and body["series"][0]["labels"]["app"] == db["id"]
        r = await client.get(f"/v1/databases/{idle['id']}/metrics", headers=members.viewer)
        assert r.status_code == 200 and r.json()["series"] == [], r.text
        problem(await client.get(url, headers=members.other), 404)
        problem(await client.get(f"/v1/databases/{theirs['id']}/metrics", headers=members.viewer), 404)

        # A threshold rule on the database's memory fires like an application's; it is shown as a database rule.
        rule = {"name": "db mem", "target_kind": "database", "target_id": db["id"], "metric": "mem_pct"}
        rule |= {"threshold": 0.001, "for_s": 0}
        r = await client.post("/v1/alert-rules", headers=members.developer, json={**rule, "target_id": theirs["id"]})
        assert problem(r, 422)["errors"][0]["loc"] == "/body/target_id"
        r = await client.post("/v1/alert-rules", headers=members.other, json=rule)
        assert problem(r, 422)["errors"][0]["loc"] == "/body/target_id"
        r = await client.post("/v1/alert-rules", headers=members.developer, json={**rule, "metric": "disk_pct"})
        problem(r, 422)
        r = await client.post("/v1/alert-rules", headers=members.developer, json=rule)
        assert r.status_code == 201, r.text
        created = r.json()
        assert (created["target_kind"], created["target_id"]) == ("database", db["id"])
        listed = (await client.get("/v1/alert-rules", headers=members.viewer)).json()
        assert [(x["target_kind"], x["target_id"]) for x in listed] == [("database", db["id"])]
        got = (await client.get(f"/v1/alert-rules/{created['id']}", headers=members.viewer)).json()
        assert got["target_kind"] == "database"

        async def firing() -> list[dict[str, Any]]:
            r = await client.get("/v1/alerts", headers=members.viewer, params={"open_only": True})
            return [a for a in r.json() if a["rule_id"] == created["id"]]

        [alert] = await eventually(firing, 30)
        assert alert["target_id"] == db["id"] and alert["value"] > 0.001
        raised = [e for e in running.events if e["type"] == "evt.alert.raised"]
        assert any(e["data"]["rule_id"] == created["id"] for e in raised)
        r = await client.put(
            f"/v1/alert-rules/{created['id']}", headers=members.developer, json={**rule, "threshold": 95}
        )
        assert r.status_code == 200 and r.json()["target_kind"] == "database", r.text
        assert json.dumps(listed).count(db["id"]) == 1
