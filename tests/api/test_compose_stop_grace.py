"""A compose service's ``stop_grace_period`` goes into the deployment's snapshot as that service's own stop
timeout (exact data); a service without one gets compose's 10 s when another service sets one (the
application's timeout is then the largest), and none at all when no service sets one (the application's)."""

from __future__ import annotations

from tests.api.conftest import make_app

GRACES = (
    "services:\n  web:\n    image: busybox\n    ports: ['8080']\n"
    "  db:\n    image: postgres:16\n    stop_grace_period: 45s\n"
    "  jobs:\n    image: busybox\n    stop_grace_period: 1500ms\n"
)
NONE = "services:\n  web:\n    image: busybox\n    ports: ['8080']\n  jobs:\n    image: busybox\n"


async def test_each_service_carries_its_own_stop_timeout(client, members, scheduler) -> None:
    app = await make_app(client, members.developer, {"name": "graces", "compose": {"inline": GRACES}})
    assert app["stop_timeout_s"] == 45
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    spec = cmd.data["spec"]
    assert spec["stop_timeout_s"] == 45
    assert {s["name"]: s.get("stop_timeout_s") for s in spec["services"]} == {"web": 10, "db": 45, "jobs": 2}


async def test_without_grace_periods_the_services_use_the_applications(client, members, scheduler) -> None:
    body = {"name": "nograce", "compose": {"inline": NONE}, "stop_timeout_s": 3}
    app = await make_app(client, members.developer, body)
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    assert cmd.data["spec"]["stop_timeout_s"] == 3
    assert [("stop_timeout_s" in s) for s in cmd.data["spec"]["services"]] == [False, False]
