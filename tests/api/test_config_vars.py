"""Configuration: environment variables, environment groups attached to many applications, the precedence
group < environment < application in deployment snapshots (secret flags kept), exports with origins and masked
secrets, and groups that redeploy their applications when their variables change (opt-in)."""

from __future__ import annotations

import copy

import asyncpg

from berth_common.catalogue import ApplicationSpec
from tests.api.conftest import WEB_APP, make_app
from tests.api.test_applications import GIT_APP
from tests.api.test_deployments import _until

GROUP_SECRET = "grp-s3cr3t-4a1e"
ENV_SECRET = "env-s3cr3t-77b0"


def _vars(*items: tuple) -> list[dict]:
    out = []
    for item in items:
        name, value, *rest = item
        v = {"name": name, "value": value}
        if "secret" in rest:
            v["secret"] = True
        if "build" in rest:
            v["kind"] = "build"
        out.append(v)
    return out


async def _group(client, headers, name: str, variables: list[dict], redeploy: bool = False) -> dict:
    r = await client.post(
        "/v1/env-groups", headers=headers, json={"name": name, "variables": variables, "redeploy_on_change": redeploy}
    )
    assert r.status_code == 201, r.text
    return r.json()


async def _attach(client, headers, app_id: str, group_id: str) -> list[dict]:
    r = await client.put(f"/v1/applications/{app_id}/env-groups/{group_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def _spec(cmd) -> tuple[dict[str, tuple[str, bool]], dict[str, tuple[str, bool]]]:
    spec = ApplicationSpec.model_validate(cmd.data["spec"])
    env = {e.name: (e.reveal(), e.secret) for e in spec.env}
    build = {a.name: (a.reveal(), a.secret) for a in getattr(spec.source, "build_args", [])}
    return env, build


async def test_environment_variables_are_kept_masked_and_validated(client, members):
    app = await make_app(client, members.developer)
    env_id = app["environment_id"]
    url = f"/v1/environments/{env_id}/variables"
    assert (await client.get(url, headers=members.viewer)).json() == {"environment_id": env_id, "variables": []}
    body = {
        "variables": _vars(("REGION", "eu"), ("DB_PASS", ENV_SECRET, "secret"), ("NPM_TOKEN", "t", "secret", "build"))
    }
    r = await client.put(url, headers=members.developer, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["variables"] == [
        {"name": "REGION", "value": "eu", "secret": False, "kind": "runtime"},
        {"name": "DB_PASS", "value": None, "secret": True, "kind": "runtime"},
        {"name": "NPM_TOKEN", "value": None, "secret": True, "kind": "build"},
    ]
    assert ENV_SECRET not in (await client.get(url, headers=members.admin)).text
    # Sent back without values: the secrets are kept; a secret turns plain only with a new value.
    keep = {"variables": [{"name": "DB_PASS", "secret": True}, {"name": "REGION"}]}
    r = await client.put(url, headers=members.developer, json=keep)
    assert [v["name"] for v in r.json()["variables"]] == ["DB_PASS", "REGION"]
    r = await client.put(url, headers=members.developer, json={"variables": [{"name": "DB_PASS"}]})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == "/body/variables/0/value"
    for bad, loc in (
        ([{"name": "1BAD", "value": "x"}], "/body/variables/0/name"),
        ([{"name": "A", "value": "x"}, {"name": "A", "value": "y"}], "/body/variables"),
        ([{"name": "A", "value": "x", "kind": "deploy"}], "/body/variables/0/kind"),
        ([{"name": "A", "value": "nul\x00"}], "/body/variables/0/value"),
    ):
        r = await client.put(url, headers=members.developer, json={"variables": bad})
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] == loc, (bad, r.text)
    # Runtime and build variables may share a name.
    same = {"variables": _vars(("A", "1"), ("A", "2", "build"))}
    assert (await client.put(url, headers=members.developer, json=same)).status_code == 200
    assert (await client.put(url, headers=members.viewer, json=same)).status_code == 403
    assert (await client.get(url, headers=members.other)).status_code == 404


async def test_groups_environment_and_application_merge_in_the_snapshot(client, members, scheduler, api_urls):
    body = copy.deepcopy(GIT_APP)
    body["env"] = [{"name": "C", "value": "app"}, {"name": "ONLY_APP", "value": "1"}]
    body["source"]["build_args"] = [{"name": "STAGE", "value": "app"}]
    app = await make_app(client, members.developer, body)
    g1 = await _group(
        client,
        members.developer,
        "shared",
        _vars(
            ("A", "g1"),
            ("B", "g1"),
            ("G_SECRET", GROUP_SECRET, "secret"),
            ("STAGE", "g1", "build"),
            ("NPM", "n", "build", "secret"),
        ),
    )
    g2 = await _group(client, members.developer, "override", _vars(("A", "g2")))
    await client.put(
        f"/v1/environments/{app['environment_id']}/variables",
        headers=members.developer,
        json={"variables": _vars(("B", "env"), ("C", "env"), ("E_SECRET", ENV_SECRET, "secret"))},
    )
    await _attach(client, members.developer, app["id"], g1["id"])
    attached = await _attach(client, members.developer, app["id"], g2["id"])
    assert [g["name"] for g in attached] == ["shared", "override"]
    assert await _attach(client, members.developer, app["id"], g1["id"]) == attached  # idempotent, keeps its place

    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    assert GROUP_SECRET not in r.text and ENV_SECRET not in r.text
    (cmd,) = await scheduler.wait_for("cmd.deployment.start")
    env, build = _spec(cmd)
    assert env == {
        "A": ("g2", False),  # the later group wins over the earlier
        "B": ("env", False),  # the environment over groups
        "G_SECRET": (GROUP_SECRET, True),  # secret flags preserved
        "C": ("app", False),  # the application over everything
        "E_SECRET": (ENV_SECRET, True),
        "ONLY_APP": ("1", False),
    }
    assert build == {"STAGE": ("app", False), "NPM": ("n", True)}
    assert list(env) == ["A", "B", "G_SECRET", "C", "E_SECRET", "ONLY_APP"]  # first appearance order

    # The stored snapshot has the merged secrets sealed; the deployment shows them masked.
    conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
    try:
        stored = await conn.fetchval("SELECT spec::text FROM api.deployments WHERE id = $1", r.json()["id"])
    finally:
        await conn.close()
    assert GROUP_SECRET not in stored and ENV_SECRET not in stored

    # The merged export: what a deployment gets, each with its origin; secrets masked.
    r = await client.get(
        f"/v1/applications/{app['id']}/variables/export", headers=members.viewer, params={"merged": "true"}
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "# from group:override\nA=g2\n" in r.text and "# from environment\nB=env\n" in r.text
    assert "# from application\nC=app\n" in r.text and GROUP_SECRET not in r.text
    assert "# G_SECRET=**********" in r.text
    # Detach the override: A comes from the first group again at the next deployment.
    r = await client.delete(f"/v1/applications/{app['id']}/env-groups/{g2['id']}", headers=members.developer)
    assert [g["name"] for g in r.json()] == ["shared"]
    await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    (_, cmd2) = await scheduler.wait_for("cmd.deployment.start", 2)
    assert _spec(cmd2)[0]["A"] == ("g1", False)


async def test_image_applications_get_no_build_args_and_limits_are_checked(client, members, scheduler):
    app = await make_app(client, members.developer)
    group = await _group(client, members.developer, "build-only", _vars(("ARG", "x", "build")))
    await _attach(client, members.developer, app["id"], group["id"])
    await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    (cmd,) = await scheduler.wait_for("cmd.deployment.start")
    assert cmd.data["spec"]["source"]["kind"] == "image" and "ARG" not in str(cmd.data["spec"])
    # 500 runtime variables at most once merged: a clear 422 at deploy time, nothing recorded.
    many = [{"name": f"V{i}", "value": "x"} for i in range(400)]
    big = await _group(client, members.developer, "big", many)
    await client.put(
        f"/v1/environments/{app['environment_id']}/variables",
        headers=members.developer,
        json={"variables": [{"name": f"E{i}", "value": "x"} for i in range(200)]},
    )
    await _attach(client, members.developer, app["id"], big["id"])
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 422 and "merged configuration" in r.json()["detail"], r.text


async def test_group_changes_redeploy_live_applications_when_opted_in(client, members, scheduler):
    live = await make_app(client, members.developer)
    other = copy.deepcopy(WEB_APP)
    other["name"] = "never-deployed"
    idle = await make_app(client, members.developer, other)
    group = await _group(client, members.developer, "tracked", _vars(("FLAG", "1")), redeploy=True)
    quiet = await _group(client, members.developer, "quiet", _vars(("Q", "1")))
    for g in (group, quiet):
        for a in (live, idle):
            await _attach(client, members.developer, a["id"], g["id"])
    r = await client.post(f"/v1/applications/{live['id']}/deployments", headers=members.developer)
    dep = r.json()
    (cmd,) = await scheduler.wait_for("cmd.deployment.start")
    await scheduler.run_to_success(cmd)
    await _until(client, members.viewer, dep["id"], lambda b: b["state"] == "succeeded")

    # A group without the flag: its change waits for the next deployment.
    r = await client.put(
        f"/v1/env-groups/{quiet['id']}/variables", headers=members.developer, json={"variables": _vars(("Q", "2"))}
    )
    assert r.status_code == 200 and r.json()["redeployed"] == []
    # With the flag: the live application is redeployed through the ordinary path; the idle one is not.
    r = await client.put(
        f"/v1/env-groups/{group['id']}/variables",
        headers=members.developer,
        json={"variables": _vars(("FLAG", "2"), ("TOKEN", GROUP_SECRET, "secret"))},
    )
    assert r.status_code == 200, r.text
    changed = r.json()
    assert len(changed["redeployed"]) == 1 and GROUP_SECRET not in r.text
    assert changed["applications"] == [live["id"], idle["id"]]
    (_, cmd2) = await scheduler.wait_for("cmd.deployment.start", 2)
    assert cmd2.data["deployment_id"] == changed["redeployed"][0]
    assert cmd2.data["application_id"] == live["id"]
    env, _ = _spec(cmd2)
    assert env["FLAG"] == ("2", False) and env["TOKEN"] == (GROUP_SECRET, True) and env["Q"] == ("2", False)
    deps = (await client.get(f"/v1/applications/{live['id']}/deployments", headers=members.viewer)).json()
    assert [d["number"] for d in deps] == [2, 1] and deps[0]["id"] == changed["redeployed"][0]
    # An import is a change too.
    r = await client.post(
        f"/v1/env-groups/{group['id']}/variables/import", headers=members.developer, json={"content": "FLAG=3\n"}
    )
    assert r.status_code == 200 and len(r.json()["redeployed"]) == 1
    await scheduler.wait_for("cmd.deployment.start", 3)
    assert len(scheduler.of("cmd.deployment.start")) == 3


async def test_groups_are_team_scoped_named_and_deleted_only_when_detached(client, members):
    app = await make_app(client, members.developer)
    g = await _group(client, members.developer, "common", [])
    r = await client.post("/v1/env-groups", headers=members.developer, json={"name": "common"})
    assert r.status_code == 409 and r.json()["errors"][0]["loc"] == "/body/name"
    for bad in ("Common", "has space", "-x", "x" * 64):
        r = await client.post("/v1/env-groups", headers=members.developer, json={"name": bad})
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] == "/body/name", bad
    assert (await client.get(f"/v1/env-groups/{g['id']}", headers=members.other)).status_code == 404
    r = await client.put(f"/v1/applications/{app['id']}/env-groups/{g['id']}", headers=members.other)
    assert r.status_code == 404
    other_group = await _group(client, members.other, "theirs", [])
    r = await client.put(f"/v1/applications/{app['id']}/env-groups/{other_group['id']}", headers=members.developer)
    assert r.status_code == 404  # another team's group is missing, even for an app of ours
    await _attach(client, members.developer, app["id"], g["id"])
    r = await client.patch(
        f"/v1/env-groups/{g['id']}", headers=members.developer, json={"name": "renamed", "redeploy_on_change": True}
    )
    assert r.status_code == 200 and r.json()["name"] == "renamed" and r.json()["redeploy_on_change"] is True
    assert (await client.delete(f"/v1/env-groups/{g['id']}", headers=members.admin)).status_code == 409
    assert (
        await client.delete(f"/v1/applications/{app['id']}/env-groups/{g['id']}", headers=members.developer)
    ).status_code == 200
    assert (
        await client.delete(f"/v1/applications/{app['id']}/env-groups/{g['id']}", headers=members.developer)
    ).status_code == 404
    assert (await client.delete(f"/v1/env-groups/{g['id']}", headers=members.developer)).status_code == 403
    assert (await client.delete(f"/v1/env-groups/{g['id']}", headers=members.admin)).status_code == 204
    assert [x["name"] for x in (await client.get("/v1/env-groups", headers=members.viewer)).json()] == []
