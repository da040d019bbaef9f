"""``COMPOSE_PROFILES`` inherited: a compose application reads the variable from its environment and its
groups when it has none of its own, with the precedence its containers' variables have (groups < the
environment < the application); a secret one activates nothing. A change of the inherited value since the
file was translated is read at the next deployment."""

from __future__ import annotations

from berth_api.usecases.compose_apps import profiles_value
from tests.api.conftest import make_app
from tests.api.test_compose_profiles_active import NOT_ACTIVE, TEXT
from tests.api.test_config_vars import _attach, _group, _vars
from tests.api.test_projects import problem


def test_the_applications_own_value_hides_the_inherited_one() -> None:
    assert profiles_value([], "ops") == "ops"
    assert profiles_value([("COMPOSE_PROFILES", "debug", False)], "ops") == "debug"
    assert profiles_value([("COMPOSE_PROFILES", "debug", True)], "ops") is None  # a secret: never read
    assert profiles_value([("OTHER", "x", False)], None) is None


async def _deployed(client, headers, scheduler, app_id: str, count: int) -> list[str]:
    r = await client.post(f"/v1/applications/{app_id}/deployments", headers=headers)
    assert r.status_code == 202, r.text
    cmd = (await scheduler.wait_for("cmd.deployment.start", count))[-1]
    return [s["name"] for s in cmd.data["spec"]["services"]]


async def test_inherited_profiles_count_with_the_containers_precedence(client, members, scheduler) -> None:
    dev = members.developer
    probe = {"name": "probe", "compose": {"inline": "services:\n  probe:\n    image: busybox\n"}}
    env_id = (await make_app(client, dev, probe))["environment_id"]
    env_url = f"/v1/environments/{env_id}/variables"
    r = await client.put(env_url, headers=dev, json={"variables": _vars(("COMPOSE_PROFILES", "debug"))})
    assert r.status_code == 200, r.text

    # made in the environment: its value is read at once
    r = await client.post(
        f"/v1/environments/{env_id}/applications", headers=dev, json={"name": "stack", "compose": {"inline": TEXT}}
    )
    assert r.status_code == 201, r.text
    app = r.json()
    assert [s["name"] for s in app["services"]] == ["web", "debug"]
    assert app["compose"]["translated"]["profiles"] == ["debug"]

    # a group's value is under the environment's
    group = await _group(client, dev, "profiles", _vars(("COMPOSE_PROFILES", "ops")))
    await _attach(client, dev, app["id"], group["id"])
    assert await _deployed(client, dev, scheduler, app["id"], 1) == ["web", "debug"]

    # the environment's gone: the group's counts, read at the deployment
    assert (await client.put(env_url, headers=dev, json={"variables": []})).status_code == 200
    assert await _deployed(client, dev, scheduler, app["id"], 2) == ["web", "tools"]
    shown = (await client.get(f"/v1/applications/{app['id']}", headers=dev)).json()
    assert shown["compose"]["translated"]["profiles"] == ["ops"]
    assert shown["compose"]["translated"]["notes"] == [
        f"services/debug: not deployed: it has profiles [debug], {NOT_ACTIVE}"
    ]

    # the application's own hides both
    own = {"env": [{"name": "COMPOSE_PROFILES", "value": "debug"}]}
    r = await client.patch(f"/v1/applications/{app['id']}", headers=dev, json=own)
    assert r.status_code == 200, r.text
    assert [s["name"] for s in r.json()["services"]] == ["web", "debug"]
    assert await _deployed(client, dev, scheduler, app["id"], 3) == ["web", "debug"]

    # a secret inherited value activates nothing; a bad one is named
    r = await client.patch(f"/v1/applications/{app['id']}", headers=dev, json={"env": []})
    assert [s["name"] for s in r.json()["services"]] == ["web", "tools"]
    secret = {"variables": _vars(("COMPOSE_PROFILES", "ops", "secret"))}
    r = await client.put(f"/v1/env-groups/{group['id']}/variables", headers=dev, json=secret)
    assert r.status_code == 200, r.text
    assert await _deployed(client, dev, scheduler, app["id"], 4) == ["web"]
    await client.put(env_url, headers=dev, json={"variables": _vars(("COMPOSE_PROFILES", "a b"))})
    r = await client.patch(f"/v1/applications/{app['id']}", headers=dev, json={"env": []})
    (err,) = problem(r, 422)["errors"]
    assert (err["loc"], err["detail"]) == (
        "/body/env",
        "COMPOSE_PROFILES inherited from the environment or a group: 'a b' is not a compose profile name "
        "([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 64)",
    )
