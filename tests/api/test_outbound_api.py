"""The outbound rule in the api: a git source, an image's registry, a registry credential's host and a forge
API address the rule refuses are a 422 naming the field and the rule; a commit status is not sent to a
refused address nor through a redirect to one. The test allows exactly 127.0.0.1 (its forge receiver)."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.api.conftest import WEB_APP, make_app, make_project
from tests.api.forge_bodies import signed_push
from tests.api.test_projects import problem
from tests.api.test_webhooks import deliver, git_app, hook, sha

RULE = "; an admin can allow it (BERTH_OUTBOUND_ALLOW, or the team's outbound allowance)"


@pytest.fixture
def api_settings(api_settings):
    return api_settings.model_copy(update={"outbound_allow": "127.0.0.1/32", "webhook_debounce_s": 0.3})


async def _app_refused(client, members, source: dict) -> dict:
    proj = (await client.get("/v1/projects", headers=members.developer)).json()
    proj = proj[0] if proj else await make_project(client, members.developer)
    env = proj["environments"][0]
    body = {**WEB_APP, "name": "refused", "source": source}
    r = await client.post(f"/v1/environments/{env['id']}/applications", headers=members.developer, json=body)
    return problem(r, 422)["errors"][0]


@pytest.mark.parametrize(
    ("source", "loc", "detail"),
    [
        (
            {"kind": "git", "repository": "http://169.254.169.254/latest.git", "branch": "main"},
            "/body/source/repository",
            "outbound rule: 169.254.169.254 is a cloud metadata address",
        ),
        (
            {"kind": "git", "repository": "git@2130706434:acme/blog.git", "branch": "main"},
            "/body/source/repository",
            "outbound rule: 127.0.0.2 is a loopback address",
        ),
        (
            {"kind": "image", "image": "0.0.0.0:5000/acme/shop:1"},
            "/body/source/image",
            "outbound rule: 0.0.0.0 is the unspecified address",
        ),
    ],
)
async def test_an_application_source_the_rule_refuses_is_a_422(client, members, source, loc, detail):
    error = await _app_refused(client, members, source)
    assert (error["loc"], error["detail"]) == (loc, detail + RULE)


async def test_an_allowed_source_is_accepted(client, members):
    app = await make_app(
        client, members.developer, {**WEB_APP, "source": {"kind": "image", "image": "127.0.0.1:5000/a:1"}}
    )
    assert app["source"]["image"] == "127.0.0.1:5000/a:1"


async def test_a_registry_host_the_rule_refuses_is_a_422(client, members):
    body = {"name": "meta", "host": "169.254.169.254:5000", "username": "u", "password": "p"}
    error = problem(await client.post("/v1/registries", headers=members.developer, json=body), 422)["errors"][0]
    assert (error["loc"], error["detail"]) == (
        "/body/host",
        "outbound rule: 169.254.169.254 is a cloud metadata address" + RULE,
    )
    body = {**body, "name": "local", "host": "localhost:5000"}
    assert (await client.post("/v1/registries", headers=members.developer, json=body)).status_code == 201


async def test_a_forge_api_the_rule_refuses_is_a_422(client, members):
    app = await git_app(client, members)
    await hook(client, members, app["id"])
    target = {"forge": "github", "api_url": "http://169.254.169.254/api", "repository": "acme/blog", "token": "t"}
    r = await client.put(f"/v1/applications/{app['id']}/webhook/status", headers=members.developer, json=target)
    error = problem(r, 422)["errors"][0]
    assert (error["loc"], error["detail"]) == (
        "/body/api_url",
        "outbound rule: 169.254.169.254 is a cloud metadata address" + RULE,
    )


@pytest.mark.parametrize("location", ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.2:9/x"])
async def test_a_commit_status_redirected_to_a_refused_address_is_not_sent(client, members, scheduler, location):
    from tests.api.forge_receivers import StatusReceiver

    receiver = await StatusReceiver("github", "tok", script=[(302, {"Location": location})]).start()
    try:
        app = await git_app(client, members)
        created = await hook(client, members, app["id"])
        target = {"forge": "github", "api_url": f"{receiver.base}/api", "repository": "acme/blog", "token": "tok"}
        r = await client.put(f"/v1/applications/{app['id']}/webhook/status", headers=members.developer, json=target)
        assert r.status_code == 200, r.text
        raw, h = signed_push("github", created["secret"], "main", sha(91))
        assert (await deliver(client, created["url"], raw, h)).status_code == 202
        deadline = time.monotonic() + 15
        while True:
            shown = (await client.get(f"/v1/applications/{app['id']}/webhook", headers=members.viewer)).json()
            if "not sent" in (shown["last_result"] or ""):
                break
            assert time.monotonic() < deadline, shown
            await asyncio.sleep(0.1)
        host = location.split("/")[2].split(":")[0]
        assert f"refused: redirect to http://{host}: outbound rule: {host} is" in shown["last_result"]
        assert len(receiver.requests) == 1
    finally:
        await receiver.stop()


async def test_an_s3_endpoint_the_rule_refuses_is_a_422_on_create_and_update(client, members):
    body = {
        "kind": "s3",
        "name": "offsite",
        "endpoint": "http://169.254.169.254",
        "bucket": "berth-backups",
        "access_key": "AKIAEXAMPLE",
        "secret_key": "s3-secret-never-shown",
    }
    r = await client.post("/v1/backup-destinations", headers=members.admin, json=body)
    error = problem(r, 422)["errors"][0]
    assert (error["loc"], error["detail"]) == (
        "/body/endpoint",
        "outbound rule: 169.254.169.254 is a cloud metadata address" + RULE,
    )
    r = await client.post(
        "/v1/backup-destinations", headers=members.admin, json={**body, "endpoint": "http://127.0.0.1:9"}
    )
    assert r.status_code == 201, r.text
    moved = {"endpoint": "http://127.0.0.2:9"}
    r = await client.patch(f"/v1/backup-destinations/{r.json()['id']}", headers=members.admin, json=moved)
    error = problem(r, 422)["errors"][0]
    assert (error["loc"], error["detail"]) == (
        "/body/endpoint",
        "outbound rule: 127.0.0.2 is a loopback address" + RULE,
    )
