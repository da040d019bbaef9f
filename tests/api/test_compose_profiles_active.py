"""Compose profiles activated, as ``docker compose --profile`` (or ``COMPOSE_PROFILES``) activates them: the
application's ``compose.profiles`` and the profiles its non-secret variable ``COMPOSE_PROFILES`` lists are
given to the real parser, which keeps the services of an active profile; the notes name only the services
none of whose profiles is active. Translated exactly (each file normalised by the real parser first), and
through the api."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from berth_api.adapters.compose_parser import ComposeParseError, normalise, profile_args
from berth_api.domain.compose import precheck, profiles, translate
from tests.api.conftest import make_app
from tests.api.test_projects import locs, problem

TEXT = """
services:
  web:
    image: busybox
    expose: ['8080']
  debug:
    image: busybox:1.36
    command: [sleep, infinity]
    profiles: [debug]
    depends_on: [web]
  tools:
    image: alpine
    profiles: [tools, ops]
"""
NOT_ACTIVE = "none of them active (compose.profiles or the variable COMPOSE_PROFILES activates one)"


def _translated(text: str, active: Sequence[str] = ()) -> dict[str, Any]:
    found = asyncio.run(normalise(text, {}, profiles=active))
    return translate(found.model, precheck(text), declared_profiles=profiles.declared(text))


def test_a_profiled_service_is_deployed_only_with_its_profile_active() -> None:
    without = _translated(TEXT)
    assert [s["name"] for s in without["services"]] == ["web"]
    assert without["notes"] == [
        f"services/debug: not deployed: it has profiles [debug], {NOT_ACTIVE}",
        f"services/tools: not deployed: it has profiles [tools, ops], {NOT_ACTIVE}",
    ]

    got = _translated(TEXT, ["debug"])
    web, debug = got["services"]
    assert web == without["services"][0]  # the service without profiles is translated as before
    assert debug == {
        "kind": "worker",
        "name": "debug",
        "replicas": 1,
        "health_command": None,
        "command": ["sleep", "infinity"],
        "image": "busybox:1.36",
        "depends_on": [{"service": "web", "condition": "service_started"}],
        "restart": "no",  # compose's default
    }
    assert got["start_order"] == [["web"], ["debug"]]
    assert got["notes"] == [f"services/tools: not deployed: it has profiles [tools, ops], {NOT_ACTIVE}"]
    # any one of a service's profiles starts it
    assert [s["name"] for s in _translated(TEXT, ["ops", "debug"])["services"]] == ["web", "debug", "tools"]


def test_a_need_of_a_profiled_service_is_met_once_its_profile_is_active() -> None:
    text = (
        "services:\n  api:\n    image: busybox\n    depends_on: [db]\n  db:\n    image: busybox\n    profiles: [db]\n"
    )
    with pytest.raises(ComposeParseError) as caught:
        asyncio.run(normalise(text, {}))
    refused = profiles.dependency_refusal(str(caught.value), text)
    assert refused is not None and refused.why == (
        "api needs db, which is not deployed: it has profiles [db], none of them active (docker compose refuses "
        "this file too without one of them); activate one of them (compose.profiles, COMPOSE_PROFILES), remove the "
        "profiles of db, or api's need of it"
    )
    got = _translated(text, ["db"])
    assert (got["start_order"], got["notes"]) == ([["db"], ["api"]], [])


def test_the_active_profiles_are_the_applications_then_its_variables() -> None:
    assert profiles.active([], None) == ()
    assert profiles.active(["debug"], " tools, ,debug,ops.v2 ") == ("debug", "tools", "ops.v2")
    with pytest.raises(ValueError, match="'bad name' is not a compose profile name"):
        profiles.active([], "ok,bad name")
    with pytest.raises(ValueError, match="'-x' is not a compose profile name"):
        profiles.active([], "-x")
    assert profile_args(["a", "b_1.c-d"]) == ["--profile", "a", "--profile", "b_1.c-d"]
    for bad in ("--file=/etc/passwd", "-f", "", "a b"):  # never an option of the binary
        with pytest.raises(ComposeParseError):
            profile_args([bad])


async def test_profiles_through_the_api(client, members, scheduler) -> None:
    body = {"name": "stack", "compose": {"inline": TEXT, "profiles": ["debug"]}}
    app = await make_app(client, members.developer, body)
    assert [s["name"] for s in app["services"]] == ["web", "debug"]
    assert app["compose"]["profiles"] == ["debug"]
    translated = app["compose"]["translated"]
    assert translated["profiles"] == ["debug"]
    assert translated["notes"] == [f"services/tools: not deployed: it has profiles [tools, ops], {NOT_ACTIVE}"]

    # the application's variable activates more, as COMPOSE_PROFILES does for docker compose
    env = [{"name": "COMPOSE_PROFILES", "value": "ops"}]
    r = await client.patch(f"/v1/applications/{app['id']}", headers=members.developer, json={"env": env})
    assert r.status_code == 200, r.text
    assert [s["name"] for s in r.json()["services"]] == ["web", "debug", "tools"]
    assert r.json()["compose"]["translated"]["profiles"] == ["debug", "ops"]
    assert r.json()["compose"]["translated"]["notes"] == []
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    (cmd,) = await scheduler.wait_for("cmd.deployment.start")
    assert [s["name"] for s in cmd.data["spec"]["services"]] == ["web", "debug", "tools"]

    # without them, the services of those profiles are not deployed any more
    r = await client.patch(
        f"/v1/applications/{app['id']}", headers=members.developer, json={"compose": {"inline": TEXT}, "env": []}
    )
    assert r.status_code == 200, r.text
    assert [s["name"] for s in r.json()["services"]] == ["web"]
    assert "profiles" not in r.json()["compose"] and "profiles" not in r.json()["compose"]["translated"]

    url = f"/v1/environments/{app['environment_id']}/applications"
    bad = {"name": "bad", "compose": {"inline": TEXT, "profiles": ["-x"]}}
    assert locs(problem(await client.post(url, headers=members.developer, json=bad), 422)) == {
        "/body/compose/profiles/0"
    }
    twice = {"name": "bad", "compose": {"inline": TEXT, "profiles": ["debug", "debug"]}}
    (err,) = problem(await client.post(url, headers=members.developer, json=twice), 422)["errors"]
    assert (err["loc"], err["detail"]) == ("/body/compose", "Value error, profiles: each profile once")
    wrong = {"name": "bad", "compose": {"inline": TEXT}, "env": [{"name": "COMPOSE_PROFILES", "value": "a b"}]}
    (err,) = problem(await client.post(url, headers=members.developer, json=wrong), 422)["errors"]
    assert err["loc"] == "/body/env/0/value"
    assert err["detail"] == (
        "COMPOSE_PROFILES: 'a b' is not a compose profile name ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 64)"
    )
