"""Scaling through the api: `POST /v1/applications/{id}/scale` records the replicas (the next deployment keeps
them) and sends exactly one `cmd.application.scale` (read off the real stream); bad input, roles, another
team, no live deployment and a removing application are refused with a problem naming what is wrong. A web
service's autoscaling policy is stored, shown and announced in `evt.application.autoscale_changed`."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from berth_common.bus.streams import CMD_STREAM, EVT_STREAM
from berth_common.catalogue import ApplicationScaled
from berth_common.envelope import Envelope
from tests.api.conftest import make_app
from tests.api.test_application_removal import _body, _deployed, _team
from tests.api.test_projects import locs, problem

SCALE = "cmd.application.scale"


async def _taken(scheduler, subject: str, stream: str = CMD_STREAM, timeout: float = 1.5) -> list[dict[str, Any]]:
    """Every message of ``subject`` on ``stream`` so far (a fresh consumer reads them all)."""
    js = scheduler.bus.js
    name = "scale-test-" + subject.replace(".", "-")
    with contextlib.suppress(Exception):
        await js.delete_consumer(stream, name)
    config = ConsumerConfig(
        name=name,
        durable_name=name,
        filter_subject=subject,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
    )
    await js.add_consumer(stream, config)
    sub = await js.pull_subscribe_bind(durable=name, stream=stream)
    out: list[dict[str, Any]] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(50, timeout=timeout)
            except Exception:
                break
            for m in msgs:
                out.append({"id": Envelope.from_bytes(m.data).id, **Envelope.from_bytes(m.data).data})
                if stream == CMD_STREAM:
                    await m.ack()
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, name)
    return out


async def test_scale_records_replicas_and_sends_one_command(client, members, scheduler) -> None:
    app = await _deployed(client, members, scheduler)
    team = await _team(client, members.developer)
    r = await client.post(
        f"/v1/applications/{app['id']}/scale", headers=members.developer, json={"services": {"web": 3, "jobs": 2}}
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["application_id"] == app["id"]
    assert body["services"] == {"web": 3, "jobs": 2}
    assert body["trigger"] == "manual"
    assert body["reason"] == "asked by dev@example.com"

    (sent,) = [c for c in await _taken(scheduler, SCALE) if c["application_id"] == app["id"]]
    assert sent["request_id"] == body["request_id"]
    assert sent["team_id"] == team
    assert sent["services"] == {"web": 3, "jobs": 2}
    assert sent["trigger"] == "manual"
    assert sent["id"] == f"application-scale-{body['request_id']}"

    # the replicas are recorded: the application shows them and the next deployment runs them
    shown = (await client.get(f"/v1/applications/{app['id']}", headers=members.viewer)).json()
    assert {s["name"]: s["replicas"] for s in shown["services"]} == {"web": 3, "jobs": 2}
    before = len(scheduler.of("cmd.deployment.start"))
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    start = (await scheduler.wait_for("cmd.deployment.start", before + 1))[-1]
    assert {s["name"]: s["replicas"] for s in start.data["spec"]["services"]} == {"web": 3, "jobs": 2}

    # a service not named keeps its replicas; the reason given is sent
    r = await client.post(
        f"/v1/applications/{app['id']}/scale",
        headers=members.admin,
        json={"services": {"web": 1}, "reason": "night", "drain_grace_s": 5},
    )
    assert r.status_code == 202, r.text
    shown = (await client.get(f"/v1/applications/{app['id']}", headers=members.viewer)).json()
    assert {s["name"]: s["replicas"] for s in shown["services"]} == {"web": 1, "jobs": 2}
    (second,) = [c for c in await _taken(scheduler, SCALE) if c["request_id"] == r.json()["request_id"]]
    assert second["services"] == {"web": 1}
    assert second["reason"] == "night"
    assert second["drain_grace_s"] == 5
    assert sent["drain_grace_s"] is None  # none given: the scheduler's


async def test_scale_refusals(client, members, scheduler) -> None:
    app = await _deployed(client, members, scheduler, name="refused")
    url = f"/v1/applications/{app['id']}/scale"

    body = problem(await client.post(url, headers=members.developer, json={"services": {"nope": 2}}), 422)
    assert locs(body) == {"/body/services/nope"}
    for bad in ({"web": 0}, {"web": 65}, {}):
        body = problem(await client.post(url, headers=members.developer, json={"services": bad}), 422)
        assert any(loc.startswith("/body/services") for loc in locs(body)), body
    body = problem(await client.post(url, headers=members.developer, json={"services": {"web": 2}, "x": 1}), 422)
    assert "/body/x" in locs(body)

    problem(await client.post(url, headers=members.viewer, json={"services": {"web": 2}}), 403)
    problem(await client.post(url, headers=members.other, json={"services": {"web": 2}}), 404)
    problem(
        await client.post(
            "/v1/applications/a" + "0" * 31 + "/scale", headers=members.admin, json={"services": {"web": 2}}
        ),
        404,
    )

    never = await make_app(client, members.developer, _body("never"))
    body = problem(
        await client.post(
            f"/v1/applications/{never['id']}/scale", headers=members.developer, json={"services": {"web": 2}}
        ),
        409,
    )
    assert "no live deployment" in body["detail"]

    assert (await client.delete(f"/v1/applications/{app['id']}", headers=members.admin)).status_code == 202
    body = problem(await client.post(url, headers=members.developer, json={"services": {"web": 2}}), 409)
    assert body["type"] == "urn:berth:problem:application-removing"

    # nothing was sent for any refused request, and nothing recorded
    assert [c for c in await _taken(scheduler, SCALE) if c["application_id"] in (app["id"], never["id"])] == []
    shown = (await client.get(f"/v1/applications/{never['id']}", headers=members.viewer)).json()
    assert {s["name"]: s["replicas"] for s in shown["services"]} == {"web": 2, "jobs": 1}


async def test_autoscale_policy(client, members, scheduler) -> None:
    app = await make_app(client, members.developer, _body("auto"))
    url = f"/v1/applications/{app['id']}/services/web/autoscale"
    assert (await client.get(url, headers=members.viewer)).json() is None

    policy = {"min": 2, "max": 8, "cpu_percent": 70, "cooldown_s": 60}
    r = await client.put(url, headers=members.developer, json=policy)
    assert r.status_code == 200, r.text
    expected = {"min": 2, "max": 8, "cpu_percent": 70.0, "memory_percent": None, "cooldown_s": 60.0}
    assert r.json() == expected
    assert (await client.get(url, headers=members.viewer)).json() == expected

    problem(await client.put(url, headers=members.viewer, json=policy), 403)
    problem(await client.put(url, headers=members.other, json=policy), 404)
    body = problem(await client.put(url, headers=members.developer, json={"min": 1, "max": 4}), 422)
    assert "exactly one target" in str(body)
    body = problem(await client.put(url, headers=members.developer, json={**policy, "memory_percent": 50}), 422)
    body = problem(await client.put(url, headers=members.developer, json={**policy, "min": 9}), 422)
    body = problem(await client.put(url.replace("/web/", "/jobs/"), headers=members.developer, json=policy), 422)
    assert locs(body) == {"/path/service"}
    problem(await client.put(url.replace("/web/", "/nope/"), headers=members.developer, json=policy), 404)

    problem(await client.delete(url, headers=members.developer), 403)  # deletions need an admin
    assert (await client.delete(url, headers=members.admin)).status_code == 204
    assert (await client.get(url, headers=members.viewer)).json() is None

    await asyncio.sleep(0.2)
    events = [e for e in await _taken(scheduler, "evt.application.autoscale_changed", EVT_STREAM, 0.5)]
    mine = [e for e in events if e["application_id"] == app["id"]]
    assert [(e["service"], e["policy"]) for e in mine] == [("web", expected), ("web", None)]
    assert mine[0]["revision"] < mine[1]["revision"]
    assert mine[0]["team_id"] == await _team(client, members.developer)


async def _replicas(client, members, app_id: str) -> dict[str, int]:
    shown = (await client.get(f"/v1/applications/{app_id}", headers=members.viewer)).json()
    return {s["name"]: s["replicas"] for s in shown["services"]}


async def _until_replicas(client, members, app_id: str, wanted: dict[str, int], timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (got := await _replicas(client, members, app_id)) != wanted:
        assert asyncio.get_running_loop().time() < deadline, got
        await asyncio.sleep(0.1)


async def test_the_autoscalers_changes_become_the_desired_replicas(client, members, scheduler) -> None:
    """``evt.application.scaled`` from the autoscaler is recorded (compare and set on ``from_replicas``), so the
    next deployment runs the autoscaled count; a person's scale, a failed scale and a stale answer are not."""
    app = await _deployed(client, members, scheduler)
    team = await _team(client, members.developer)
    assert await _replicas(client, members, app["id"]) == {"web": 2, "jobs": 1}

    def scaled(request: str, frm: int, to: int, **kw: Any) -> ApplicationScaled:
        fields: dict[str, Any] = {"trigger": "auto", "reason": "cpu 90% > 70% target for 60s"} | kw
        return ApplicationScaled(
            application_id=app["id"],
            team_id=team,
            request_id=request,
            service="web",
            from_replicas=frm,
            to_replicas=to,
            **fields,
        )

    await scheduler.bus.publish(scaled("a1", 2, 4))
    await _until_replicas(client, members, app["id"], {"web": 4, "jobs": 1})
    # seen again (a redelivery under a new id) after the newer change 4 -> 3: it no longer applies
    await scheduler.bus.publish(scaled("a2", 4, 3))
    await _until_replicas(client, members, app["id"], {"web": 3, "jobs": 1})
    await scheduler.bus.publish(scaled("a1", 2, 4))
    # a person's scale and a failed autoscale are not written back (the api recorded the person's already)
    await scheduler.bus.publish(scaled("m1", 3, 7, trigger="manual"))
    await scheduler.bus.publish(scaled("a3", 3, 5, outcome="failed", failure="route not confirmed"))
    # a later change that applies shows the ones before it were handled (and left the replicas alone)
    await scheduler.bus.publish(scaled("a4", 3, 2))
    await _until_replicas(client, members, app["id"], {"web": 2, "jobs": 1})

    before = len(scheduler.of("cmd.deployment.start"))
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    start = (await scheduler.wait_for("cmd.deployment.start", before + 1))[-1]
    assert {s["name"]: s["replicas"] for s in start.data["spec"]["services"]} == {"web": 2, "jobs": 1}
