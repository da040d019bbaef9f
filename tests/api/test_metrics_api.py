"""Metrics, alert rules and alerts through the api: the REST routes ask the REAL metrics service over the bus.

The api and the metrics service (collecting every second from the real Docker engine) run in-process on the
real nats-server and Postgres; a busybox container carries the labels the scheduler gives an application's
containers (``berth.app`` etc., no team label).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.api.conftest import WEB_APP, make_app
from tests.api.test_notifications_api import problem
from tests.metrics.service import containers, metrics_service, run_busybox

RULES = "/v1/alert-rules"
SERVER = "test-vm"


async def eventually(check: Any, timeout: float = 60.0, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s")
        await asyncio.sleep(interval)


def values(series: dict[str, Any]) -> list[float]:
    return [v for _, v in series["points"] if v is not None]


@pytest.mark.slow
@pytest.mark.docker
async def test_metrics_and_alerts_of_the_teams_application(client, members, nats_server, database, monkeypatch):
    monkeypatch.setenv("BERTH_METRICS_SERVER_NAME", SERVER)  # the name `local` resolves to, as in one environment
    app = await make_app(client, members.developer)
    idle = await make_app(client, members.developer, body={**WEB_APP, "name": "idle"})
    foreign = await make_app(client, members.other, body={**WEB_APP, "name": "theirs"}, project="theirs")
    async with metrics_service(nats_server.url, database) as running, containers() as made:
        labels = {"berth.app": app["id"], "berth.service": "web", "berth.deployment": "d" * 32}
        cid = run_busybox("--memory", "64m", labels=labels, command=["sleep", "600"])
        made.append(cid)
        start = datetime.now(UTC) - timedelta(minutes=2)
        url = f"/v1/applications/{app['id']}/metrics"
        params = {"from": start.isoformat(), "step": 1, "metric": ["cpu_pct", "mem_used"]}

        async def sampled() -> dict[str, Any] | None:
            r = await client.get(url, headers=members.viewer, params=params)
            assert r.status_code == 200, r.text
            body = r.json()
            cpu = [s for s in body["series"] if s["metric"] == "cpu_pct"]
            return body if cpu and len(values(cpu[0])) >= 2 else None

        body = await eventually(sampled)
        assert (body["target_kind"], body["target_id"], body["resolution"], body["step_s"]) == (
            "app",
            app["id"],
            "raw",
            1.0,
        )
        assert {(s["key"], s["metric"]) for s in body["series"]} == {(cid, "cpu_pct"), (cid, "mem_used")}
        for s in body["series"]:
            assert s["kind"] == "container" and s["server"] == SERVER
            assert s["labels"] == {"app": app["id"], "service": "web", "deployment": "d" * 32}
        cpu = next(s for s in body["series"] if s["metric"] == "cpu_pct")
        mem = next(s for s in body["series"] if s["metric"] == "mem_used")
        assert cpu["unit"] == "percent" and all(0.0 <= v < 50.0 for v in values(cpu))  # a sleeping container
        assert mem["unit"] == "bytes" and values(mem) and all(0 < v < 64 * 2**20 for v in values(mem))

        # Defaults: the last hour, about 120 points, every metric of the container.
        r = await client.get(url, headers=members.viewer)
        assert r.status_code == 200, r.text
        assert r.json()["step_s"] == 30.0 and {"cpu_pct", "mem_pct", "net_rx", "restarts", "health"} <= {
            s["metric"] for s in r.json()["series"]
        }
        # An application of the team with no container yet: no series. Another team's: 404, never its data.
        r = await client.get(f"/v1/applications/{idle['id']}/metrics", headers=members.viewer)
        assert r.status_code == 200 and r.json()["series"] == [], r.text
        problem(await client.get(url, headers=members.other), 404)
        problem(await client.get(f"/v1/applications/{foreign['id']}/metrics", headers=members.viewer), 404)
        r = await client.get(url, headers=members.viewer, params={"metric": "bogus"})
        assert problem(r, 422)["errors"][0]["loc"] == "/query/metric"
        r = await client.get(
            url, headers=members.viewer, params={"from": "2030-01-02T00:00:00Z", "to": "2030-01-01T00:00:00Z"}
        )
        assert problem(r, 422)["errors"][0]["loc"] == "/query/to"

        # The server Berth runs on: `local`, or its name; its disks come along.
        r = await client.get(
            "/v1/servers/local/metrics", headers=members.viewer, params={"from": start.isoformat(), "step": 1}
        )
        assert r.status_code == 200, r.text
        server = r.json()
        assert server["target_id"] == SERVER and {"server", "mount"} <= {s["kind"] for s in server["series"]}
        load = [s for s in server["series"] if s["metric"] == "load1"]
        assert load and values(load[0]) and load[0]["name"] == SERVER
        r = await client.get(f"/v1/servers/{SERVER}/metrics", headers=members.viewer, params={"metric": "cpu_pct"})
        assert r.status_code == 200 and {s["metric"] for s in r.json()["series"]} == {"cpu_pct"}, r.text
        problem(await client.get("/v1/servers/elsewhere/metrics", headers=members.viewer), 404)

        # Alert rules: a memory rule on the application fires at once (the container uses a little of 64 MiB).
        rule = {
            "name": "mem",
            "target_kind": "app",
            "target_id": app["id"],
            "metric": "mem_pct",
            "threshold": 0.001,
            "for_s": 0,
        }
        problem(await client.post(RULES, headers=members.viewer, json=rule), 403)
        r = await client.post(RULES, headers=members.other, json=rule)  # watching another team's application
        assert problem(r, 422)["errors"][0]["loc"] == "/body/target_id"
        r = await client.post(RULES, headers=members.developer, json=rule)
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["team_id"] == (await client.get("/v1/me", headers=members.developer)).json()["team"]["id"]

        async def firing() -> list[dict[str, Any]]:
            r = await client.get("/v1/alerts", headers=members.viewer, params={"open_only": True})
            assert r.status_code == 200, r.text
            return [a for a in r.json() if a["rule_id"] == created["id"]]

        [alert] = await eventually(firing, 30)
        assert (alert["status"], alert["target_kind"], alert["target_id"]) == ("firing", "app", app["id"])
        assert alert["value"] > 0.001 and alert["metric"] == "mem_pct"
        assert (await client.get("/v1/alerts", headers=members.other)).json() == []
        assert any(e["type"] == "evt.alert.raised" and e["data"]["rule_id"] == created["id"] for e in running.events)


@pytest.mark.slow
@pytest.mark.docker
async def test_alert_rule_crud_and_targets(client, members, nats_server, database, monkeypatch):
    monkeypatch.setenv("BERTH_METRICS_SERVER_NAME", SERVER)
    app = await make_app(client, members.developer)
    async with metrics_service(nats_server.url, database), containers() as made:
        cid = run_busybox(labels={"berth.app": app["id"], "berth.service": "web"}, command=["sleep", "600"])
        made.append(cid)
        stray = run_busybox(labels={"berth.app": "not-an-app-of-anyone"}, command=["sleep", "600"])
        made.append(stray)
        rule = {"name": "hot", "target_kind": "app", "target_id": app["id"], "metric": "cpu_pct", "threshold": 80}
        r = await client.post(RULES, headers=members.developer, json=rule)
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        assert {k: r.json()[k] for k in rule} == rule and r.json()["for_s"] == 60.0

        listed = (await client.get(RULES, headers=members.viewer)).json()
        assert [x["id"] for x in listed] == [rid]
        assert (await client.get(f"{RULES}/{rid}", headers=members.viewer)).json()["threshold"] == 80
        assert (await client.get(RULES, headers=members.other)).json() == []
        problem(await client.get(f"{RULES}/{rid}", headers=members.other), 404)
        star = {"target_kind": "container", "target_id": "*", "metric": "restarts", "threshold": 3}
        problem(await client.put(f"{RULES}/{rid}", headers=members.other, json=star), 404)
        problem(await client.delete(f"{RULES}/{rid}", headers=members.other), 404)

        r = await client.put(f"{RULES}/{rid}", headers=members.developer, json={**rule, "threshold": 90, "for_s": 120})
        assert r.status_code == 200 and (r.json()["threshold"], r.json()["for_s"]) == (90, 120), r.text
        assert (await client.get(f"{RULES}/{rid}", headers=members.viewer)).json()["threshold"] == 90

        # Refusals name the field: the rule's own checks, and the metrics service's.
        r = await client.post(RULES, headers=members.developer, json={**rule, "metric": "disk_pct"})
        assert problem(r, 422)["errors"][0]["loc"].startswith("/body")
        r = await client.post(RULES, headers=members.developer, json={**rule, "threshold": -1})
        assert problem(r, 422)["errors"][0]["loc"] == "/body/threshold"

        # Container targets: a container of the team's application once the metrics service has seen it;
        # a container that is not the team's is refused.
        container_rule = {"target_kind": "container", "target_id": cid[:12], "metric": "mem_pct", "threshold": 90}

        async def accepted() -> bool:
            r = await client.post(RULES, headers=members.developer, json=container_rule)
            if r.status_code == 422:
                return False
            assert r.status_code == 201, r.text
            return True

        await eventually(accepted, 30)
        r = await client.post(RULES, headers=members.other, json=container_rule)
        assert problem(r, 422)["errors"][0]["loc"] == "/body/target_id"
        r = await client.post(RULES, headers=members.developer, json={**container_rule, "target_id": stray[:12]})
        assert problem(r, 422)["errors"][0]["loc"] == "/body/target_id"
        # A server rule on `local` watches this server by its name.
        r = await client.post(
            RULES,
            headers=members.developer,
            json={"target_kind": "server", "target_id": "local", "metric": "disk_pct", "threshold": 95},
        )
        assert r.status_code == 201 and r.json()["target_id"] == SERVER, r.text
        assert len((await client.get(RULES, headers=members.viewer)).json()) == 3

        # Deleting is for admins.
        problem(await client.delete(f"{RULES}/{rid}", headers=members.developer), 403)
        assert (await client.delete(f"{RULES}/{rid}", headers=members.admin)).status_code == 204
        problem(await client.delete(f"{RULES}/{rid}", headers=members.admin), 404)
        problem(await client.get(f"{RULES}/{rid}", headers=members.viewer), 404)
        assert (await client.get("/v1/alerts", headers=members.viewer)).json() == []


async def test_without_the_metrics_service_the_api_answers_503_naming_it(client, members):
    app = await make_app(client, members.developer)
    rule = {"target_kind": "app", "target_id": app["id"], "metric": "cpu_pct", "threshold": 50}
    for r in (
        await client.get(f"/v1/applications/{app['id']}/metrics", headers=members.viewer),
        await client.get("/v1/servers/local/metrics", headers=members.viewer),
        await client.get(RULES, headers=members.viewer),
        await client.post(RULES, headers=members.developer, json=rule),
        await client.get("/v1/alerts", headers=members.viewer),
    ):
        body = problem(r, 503)
        assert "metrics" in body["detail"] and body["type"].endswith("service-unavailable"), body
    # The team check comes first: another team's application is a 404 whether the service is up or not.
    problem(await client.get(f"/v1/applications/{app['id']}/metrics", headers=members.other), 404)
