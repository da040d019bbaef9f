"""GET /v1/applications from the per-team page cache: the bytes are the model's, every write that changes the
list shows at once (in this api process and in another one on the same database), ETag and 304,
pagination headers, and the plain-request path agrees with FastAPI's."""

from __future__ import annotations

import asyncio
import copy

import asyncpg
import httpx
from pydantic import TypeAdapter

from berth_api.entrypoints.schemas_apps_out import ApplicationListItem
from berth_cli.components import free_port
from tests.api.conftest import WEB_APP, make_app, make_project, start_api
from tests.api.test_applications import GIT_APP

LIST = TypeAdapter(list[ApplicationListItem])


def _app(name: str, **changes: object) -> dict:
    return {**copy.deepcopy(WEB_APP), "name": name, **changes}


async def _revision(api_urls: dict[str, str], team: str = "default") -> int:
    conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
    try:
        return int(await conn.fetchval("SELECT revision FROM api.teams WHERE name = $1", team))
    finally:
        await conn.close()


async def test_the_page_is_the_models_serialisation(client, members):
    """Byte for byte what response_model=list[ApplicationListItem] produces: the FastAPI-serialised list of the
    environment (the same applications, the same order) and the model's own dump of the parsed page."""
    proj = await make_project(client, members.developer)
    env_id = proj["environments"][0]["id"]
    for body in (GIT_APP, _app("shop"), _app("api", env=[{"name": "TZ", "value": "Europe/Zürich ✓"}])):
        r = await client.post(f"/v1/environments/{env_id}/applications", headers=members.developer, json=body)
        assert r.status_code == 201, r.text
    for _ in range(2):  # the miss that builds the page, then the hit
        cached = await client.get("/v1/applications", headers=members.viewer)
        assert cached.status_code == 200 and cached.headers["content-type"] == "application/json"
        by_fastapi = await client.get(f"/v1/environments/{env_id}/applications", headers=members.viewer)
        assert cached.content == by_fastapi.content
        assert cached.content == LIST.dump_json(LIST.validate_json(cached.content), by_alias=True)
    assert [a["name"] for a in cached.json()] == ["api", "blog", "shop"]
    assert "Zürich ✓".encode() in cached.content
    assert all(v["value"] is None for a in cached.json() for v in a["env"] if v["secret"])


async def test_every_write_that_changes_the_list_shows_at_once(client, members, api_urls):
    async def listed() -> list[dict]:
        r = await client.get("/v1/applications", headers=members.viewer)
        assert r.status_code == 200
        return r.json()

    assert await listed() == []
    app = await make_app(client, members.developer)
    assert [a["id"] for a in await listed()] == [app["id"]]
    app_id = app["id"]

    r = await client.patch(f"/v1/applications/{app_id}", headers=members.developer, json={"stop_timeout_s": 42})
    assert r.status_code == 200, r.text
    assert (await listed())[0]["stop_timeout_s"] == 42

    r = await client.post(
        f"/v1/applications/{app_id}/variables/import",
        headers=members.developer,
        json={"content": "IMPORTED=yes\n"},
    )
    assert r.status_code in (200, 201), r.text
    assert {"name": "IMPORTED", "value": "yes", "secret": False} in (await listed())[0]["env"]

    # A write by another process (here: straight in the database) is seen through the revision alone.
    before = await _revision(api_urls)
    conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
    try:
        await conn.execute("UPDATE api.variables SET value = 'direct' WHERE application_id = $1", app_id)
        after = await _revision(api_urls)
        assert after > before
        # Re-sealing a secret (a key rotation) changes nothing the list shows: no new revision.
        await conn.execute("UPDATE api.variables SET sealed = sealed WHERE application_id = $1", app_id)
    finally:
        await conn.close()
    assert await _revision(api_urls) == after
    assert {v["value"] for v in (await listed())[0]["env"]} == {"direct"}

    r = await client.delete(f"/v1/applications/{app_id}", headers=members.admin)
    assert r.status_code == 204, r.text
    assert await listed() == []

    # Another team's writes do not touch this team's revision.
    before = await _revision(api_urls)
    await make_app(client, members.other)
    assert await _revision(api_urls) == before
    assert await listed() == []


async def test_etag_and_if_none_match(client, members):
    app = await make_app(client, members.developer)
    first = await client.get("/v1/applications", headers=members.viewer)
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert first.headers["cache-control"] == "private, no-cache"
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = await client.get("/v1/applications", headers={**members.viewer, "If-None-Match": sent})
        assert again.status_code == 304, sent
        assert again.content == b"" and again.headers["etag"] == etag
    other = await client.get("/v1/applications", headers={**members.viewer, "If-None-Match": '"other"'})
    assert other.status_code == 200 and other.content == first.content
    # Another team's page (empty) is not this one, and a change makes a new validator.
    foreign = await client.get("/v1/applications", headers={**members.other, "If-None-Match": etag})
    assert foreign.status_code == 200 and foreign.json() == []
    await client.patch(f"/v1/applications/{app['id']}", headers=members.developer, json={"stop_timeout_s": 7})
    changed = await client.get("/v1/applications", headers={**members.viewer, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.json()[0]["stop_timeout_s"] == 7


async def test_pagination_headers(client, members):
    for name in ("a1", "a2", "a3"):
        await make_app(client, members.developer, _app(name))
    r = await client.get("/v1/applications?limit=2", headers=members.viewer)
    assert [a["name"] for a in r.json()] == ["a1", "a2"]
    assert r.headers["x-total-count"] == "3"
    assert r.headers["link"] == '</v1/applications?limit=2&offset=2>; rel="next"'
    last = await client.get("/v1/applications?limit=2&offset=2", headers=members.viewer)
    assert [a["name"] for a in last.json()] == ["a3"] and "link" not in last.headers
    project_id = r.json()[0]["project_id"]
    scoped = await client.get(f"/v1/applications?project_id={project_id}&limit=1", headers=members.viewer)
    assert scoped.headers["link"] == f'</v1/applications?project_id={project_id}&limit=1&offset=1>; rel="next"'
    whole = await client.get("/v1/applications", headers=members.viewer)
    assert whole.headers["x-total-count"] == "3" and "link" not in whole.headers


async def test_plain_requests_and_validated_ones_agree(client, members):
    """Parameters the plain path does not take as they are go through FastAPI: validated the same way."""
    for name in ("b1", "b2", "b3"):
        await make_app(client, members.developer, _app(name))
    h = members.viewer
    plain = await client.get("/v1/applications?limit=2&offset=1", headers=h)
    assert [a["name"] for a in plain.json()] == ["b2", "b3"]
    for odd in ("limit=1&limit=2&offset=1", "limit=+2&offset=1", "limit=2&offset=1&unknown=x"):
        r = await client.get(f"/v1/applications?{odd}", headers=h)
        assert r.status_code == 200 and r.content == plain.content, odd
    for bad in ("limit=0", "limit=1001", "limit=abc", "offset=-1", "project_id=nope", "limit=99999"):
        r = await client.get(f"/v1/applications?{bad}", headers=h)
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", bad
    assert (await client.get("/v1/applications")).status_code == 401
    assert (await client.get("/v1/applications?limit=0")).status_code == 401  # who asks first, then what


async def test_another_api_process_sees_writes_and_revocations_at_once(api, client, members, api_settings):
    """Two api processes on one database: each caches pages, neither serves a stale one or a revoked token."""
    second = await start_api(
        api_settings.model_copy(update={"http_port": free_port(), "data_dir": api_settings.data_dir / "second"})
    )
    try:
        async with httpx.AsyncClient(base_url=second.url, timeout=10) as other:
            app = await make_app(client, members.developer)
            seen = (await other.get("/v1/applications", headers=members.viewer)).json()
            assert [a["id"] for a in seen] == [app["id"]]
            r = await client.patch(
                f"/v1/applications/{app['id']}", headers=members.developer, json={"stop_timeout_s": 3}
            )
            assert r.status_code == 200
            assert (await other.get("/v1/applications", headers=members.viewer)).json()[0]["stop_timeout_s"] == 3

            created = await client.post("/v1/tokens", headers=members.admin, json={"name": "short-lived"})
            token = {"Authorization": f"Bearer {created.json()['token']}"}
            assert (await other.get("/v1/applications", headers=token)).status_code == 200
            r = await client.delete(f"/v1/tokens/{created.json()['id']}", headers=members.admin)
            assert r.status_code == 200
            assert (await other.get("/v1/applications", headers=token)).status_code == 401
    finally:
        await second.shutdown()


async def test_token_checks_share_statements_but_never_an_earlier_one(api, identities, api_urls):
    """Concurrent token checks go in one statement; a check asked while a statement runs is answered by the
    next one, sent after it was asked: a revocation committed in between is seen."""
    from berth_api.adapters.identity import token_lookup
    from berth_api.adapters.readpool import ReadPool

    user = await identities.member("many@example.com", "viewer")
    (first, first_id), (second, _) = await identities.token(user), await identities.token(user)
    prefixes = [t.split("_")[1] for t in (first, second)] + ["0123456789ab"]
    pool = ReadPool(api_urls["api"], "api", max_size=2)
    lookup = token_lookup(pool)
    try:
        rows = await asyncio.gather(*(lookup.get(prefixes[i % 3]) for i in range(60)))
        assert [r["key"] if r else None for r in rows[:3]] == [prefixes[0], prefixes[1], None]
        assert all((r["key"] if r else None) == (prefixes[i % 3] if i % 3 < 2 else None) for i, r in enumerate(rows))
        assert lookup.statements == 1

        asked = asyncio.create_task(lookup.get(prefixes[0]))
        while lookup.inflight == 0:  # the statement is sent
            await asyncio.sleep(0)
        conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
        try:
            await conn.execute("UPDATE api.api_tokens SET revoked_at = now() WHERE id = $1", first_id)
        finally:
            await conn.close()
        later = await lookup.get(prefixes[0])
        assert later is not None and later["revoked_at"] is not None
        await asked
        assert lookup.statements == 3
    finally:
        await pool.close()


async def test_a_rebuild_after_a_change_serialises_only_the_rows_that_changed(client, members, monkeypatch):
    """A change rebuilds the page (new revision) but the items of the rows that did not change are reused: one
    item made for a change to one application (its variable), the page still the model's serialisation."""
    from berth_api.entrypoints import views

    made: list[str] = []
    real = views.application_item

    def counted(rec):
        made.append(rec.row["name"])
        return real(rec)

    monkeypatch.setattr(views, "application_item", counted)
    proj = await make_project(client, members.developer)
    env_id = proj["environments"][0]["id"]
    apps = []
    for name in ("one", "two", "three"):
        r = await client.post(f"/v1/environments/{env_id}/applications", headers=members.developer, json=_app(name))
        assert r.status_code == 201, r.text
        apps.append(r.json())
    first = await client.get("/v1/applications", headers=members.viewer)
    assert sorted(made) == ["one", "three", "two"]
    made.clear()
    env = [{"name": "TZ", "value": "UTC"}]
    r = await client.patch(f"/v1/applications/{apps[1]['id']}", headers=members.developer, json={"env": env})
    assert r.status_code == 200, r.text
    again = await client.get("/v1/applications", headers=members.viewer)
    assert made == ["two"]
    assert again.headers["etag"] != first.headers["etag"]
    assert again.content == LIST.dump_json(LIST.validate_json(again.content), by_alias=True)
    assert [a["env"] for a in again.json() if a["name"] == "two"] == [[{"name": "TZ", "value": "UTC", "secret": False}]]
    by_fastapi = await client.get(f"/v1/environments/{env_id}/applications", headers=members.viewer)
    assert again.content == by_fastapi.content
