"""Secret values at rest: a key file made at the first start (0600), values sealed in Postgres, readable again
after a restart with the same key, unreadable (a clear error, no value) with another key."""

from __future__ import annotations

import json
import stat

import asyncpg
import httpx

from berth_common import sealing
from tests.api.conftest import bearer, start_api
from tests.api.scheduler_double import SchedulerDouble
from tests.api.test_applications import GIT_APP, SECRETS, no_secret_in

SECRET_URL = "postgres://u:pg-s3cr3t-Pw@db/blog"


async def _app(client, h) -> str:
    r = await client.post("/v1/projects", headers=h, json={"name": "acme"})
    env = r.json()["environments"][0]["id"]
    r = await client.post(f"/v1/environments/{env}/applications", headers=h, json=GIT_APP)
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def test_secrets_are_sealed_and_survive_a_restart(api_settings, api_urls, nats_server):
    api = await start_api(api_settings)
    key = api_settings.secrets_key_path
    try:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        first_key = key.read_bytes()
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
            app_id = await _app(client, bearer(api.admin_token()))
    finally:
        await api.shutdown()

    conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
    try:
        rows = await conn.fetch("SELECT name, secret, value, sealed FROM api.variables ORDER BY kind, name")
    finally:
        await conn.close()
    by_name = {r["name"]: r for r in rows}
    assert by_name["DATABASE_URL"]["value"] is None and by_name["DATABASE_URL"]["sealed"]
    assert b"s3cr3t" not in bytes(by_name["DATABASE_URL"]["sealed"]) and b"s3cr3t" not in bytes(
        by_name["NPM_TOKEN"]["sealed"]
    )
    assert by_name["PORT"]["value"] == "3000" and by_name["PORT"]["sealed"] is None

    # Same data dir: the same key opens them; the deployment carries the values to the scheduler.
    api = await start_api(api_settings)
    double = await SchedulerDouble(nats_server.url).start()
    try:
        assert key.read_bytes() == first_key
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
            r = await client.post(f"/v1/applications/{app_id}/deployments", headers=bearer(api.admin_token()))
            assert r.status_code == 202, r.text
            no_secret_in(r.text)
        (cmd,) = await double.wait_for("cmd.deployment.start")
        no_secret_in(json.dumps(cmd.data))  # sealed on the wire (berth_common.sealing), opened by the scheduler
        env = {e["name"]: e["value"] for e in cmd.data["spec"]["env"]}
        assert sealing.unseal(env["DATABASE_URL"], "berth/env/DATABASE_URL") == SECRET_URL
        npm = cmd.data["spec"]["source"]["build_args"][1]
        assert sealing.unseal(npm["value"], f"berth/build-arg/{npm['name']}") == SECRETS[0]
    finally:
        await double.stop()
        await api.shutdown()

    # Another key (a lost key file): the values cannot be read; the api says so without showing anything.
    key.write_bytes(b"f" * 64 + b"\n")
    api = await start_api(api_settings)
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
            h = bearer(api.admin_token())
            assert (await client.get(f"/v1/applications/{app_id}", headers=h)).status_code == 200  # masked anyway
            r = await client.post(f"/v1/applications/{app_id}/deployments", headers=h)
            assert r.status_code == 500 and "cannot be read on this server" in r.json()["detail"]
            no_secret_in(r.text)
    finally:
        await api.shutdown()
