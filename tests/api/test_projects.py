"""Projects and environments: CRUD, validation naming the field, team isolation (404) and roles."""

from __future__ import annotations

from berth_api.domain.problems import MEDIA_TYPE
from tests.api.conftest import make_app, make_project


def problem(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == MEDIA_TYPE
    return r.json()


def locs(body: dict) -> set[str]:
    return {e["loc"] for e in body["errors"]}


async def test_project_lifecycle(client, members):
    h = members.developer
    created = await make_project(client, h, "acme")
    assert created["name"] == "acme" and created["description"] == ""
    assert [e["name"] for e in created["environments"]] == ["production"]
    pid = created["id"]

    r = await client.post(f"/v1/projects/{pid}/environments", headers=h, json={"name": "staging"})
    assert r.status_code == 201, r.text
    staging = r.json()
    assert staging["project_id"] == pid
    envs = (await client.get(f"/v1/projects/{pid}/environments", headers=h)).json()
    assert [e["name"] for e in envs] == ["production", "staging"]
    assert (await client.get(f"/v1/environments/{staging['id']}", headers=h)).json()["name"] == "staging"

    r = await client.patch(f"/v1/projects/{pid}", headers=h, json={"name": "acme-shop", "description": "Our shop"})
    assert r.status_code == 200 and r.json()["name"] == "acme-shop" and r.json()["description"] == "Our shop"
    assert [p["name"] for p in (await client.get("/v1/projects", headers=members.viewer)).json()] == ["acme-shop"]

    # Names are unique per team (409 naming the field), per project for environments.
    body = problem(await client.post("/v1/projects", headers=h, json={"name": "acme-shop"}), 409)
    assert locs(body) == {"/body/name"}
    body = problem(await client.post(f"/v1/projects/{pid}/environments", headers=h, json={"name": "staging"}), 409)
    assert locs(body) == {"/body/name"}
    other = await make_project(client, h, "other-project")
    problem(await client.patch(f"/v1/projects/{other['id']}", headers=h, json={"name": "acme-shop"}), 409)

    # Deleting is for admins; a project or environment holding applications is kept (409).
    problem(await client.delete(f"/v1/environments/{staging['id']}", headers=h), 403)
    assert (await client.delete(f"/v1/environments/{staging['id']}", headers=members.admin)).status_code == 204
    problem(await client.get(f"/v1/environments/{staging['id']}", headers=h), 404)
    await make_app(client, h, project="acme-shop")
    problem(await client.delete(f"/v1/projects/{pid}", headers=members.admin), 409)
    assert (await client.delete(f"/v1/projects/{other['id']}", headers=members.admin)).status_code == 204
    problem(await client.get(f"/v1/projects/{other['id']}", headers=h), 404)


BAD_NAMES = [
    "",
    "Acme",
    "-acme",
    "acme-",
    "ac_me",
    "ac me",
    "a" * 64,
    "acme\n",
    "ácme",
    "--upload-pack=x",
    "../../x",
    "x" * 5000,
]


async def test_bad_project_names_are_422_naming_the_field(client, members):
    for name in BAD_NAMES:
        body = problem(await client.post("/v1/projects", headers=members.developer, json={"name": name}), 422)
        assert locs(body) == {"/body/name"}, name
        assert body["type"] == "urn:berth:problem:validation-error"
    body = {"name": "ok", "description": "nul\x00byte"}
    assert locs(problem(await client.post("/v1/projects", headers=members.developer, json=body), 422)) == {
        "/body/description"
    }
    assert (await client.get("/v1/projects", headers=members.developer)).json() == []


async def test_environment_names_fit_in_generated_hosts(client, members):
    pid = (await make_project(client, members.developer))["id"]
    url = f"/v1/projects/{pid}/environments"
    body = problem(await client.post(url, headers=members.developer, json={"name": "e" * 33}), 422)
    assert locs(body) == {"/body/name"}
    assert (await client.post(url, headers=members.developer, json={"name": "e" * 32})).status_code == 201
    body = problem(await client.post(url, headers=members.developer, json={"name": "qa", "extra": 1}), 422)
    assert locs(body) == {"/body/extra"}


async def test_another_teams_projects_are_missing(client, members):
    mine = await make_project(client, members.developer, "mine")
    pid, eid = mine["id"], mine["environments"][0]["id"]
    o = members.other
    assert (await client.get("/v1/projects", headers=o)).json() == []
    missing = "0" * 32
    for url in (f"/v1/projects/{pid}", f"/v1/projects/{pid}/environments", f"/v1/environments/{eid}"):
        theirs = problem(await client.get(url, headers=o), 404)
        absent = problem(await client.get(url.replace(pid, missing).replace(eid, missing), headers=o), 404)
        assert theirs["title"] == absent["title"] and theirs["type"] == absent["type"]
    problem(await client.patch(f"/v1/projects/{pid}", headers=o, json={"name": "stolen"}), 404)
    problem(await client.post(f"/v1/projects/{pid}/environments", headers=o, json={"name": "qa"}), 404)
    problem(await client.delete(f"/v1/projects/{pid}", headers=o), 404)
    problem(await client.delete(f"/v1/environments/{eid}", headers=o), 404)
    # The other team may use the same names.
    assert (await client.post("/v1/projects", headers=o, json={"name": "mine"})).status_code == 201
    assert (await client.get(f"/v1/projects/{pid}", headers=members.viewer)).json()["name"] == "mine"


async def test_viewers_read_only(client, members):
    v = members.viewer
    body = problem(await client.post("/v1/projects", headers=v, json={"name": "nope"}), 403)
    assert "developer" in body["detail"]
    pid = (await make_project(client, members.developer))["id"]
    problem(await client.post(f"/v1/projects/{pid}/environments", headers=v, json={"name": "qa"}), 403)
    problem(await client.patch(f"/v1/projects/{pid}", headers=v, json={"name": "x"}), 403)
    assert (await client.get(f"/v1/projects/{pid}", headers=v)).status_code == 200
    problem(await client.get("/v1/projects"), 401)
