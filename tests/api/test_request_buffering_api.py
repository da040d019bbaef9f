"""A web service's ``buffer_requests`` through the api: stored, shown, sent in the deployment's snapshot;
a PATCH of the services removes it; a limit out of range or an unknown field is a 422 naming it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.api.conftest import WEB_APP, make_app
from tests.api.test_projects import problem


def _body(name: str = "cgi", **web: Any) -> dict:
    body = copy.deepcopy(WEB_APP)
    body["name"] = name
    body["services"][0].update(web)
    return body


async def test_the_option_is_stored_shown_and_sent_in_the_snapshot(client, members, scheduler):
    app = await make_app(client, members.developer, _body(buffer_requests={"max_body_mb": 8}))
    (shown,) = [s for s in app["services"] if s["name"] == "web"]
    assert shown["buffer_requests"] == {"max_body_mb": 8}
    r = await client.get(f"/v1/applications/{app['id']}", headers=members.developer)
    assert [s.get("buffer_requests") for s in r.json()["services"]] == [{"max_body_mb": 8}, None]

    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    (start,) = [c for c in await scheduler.wait_for("cmd.deployment.start") if c.data["application_id"] == app["id"]]
    (sent,) = [s for s in start.data["spec"]["services"] if s["name"] == "web"]
    assert sent["buffer_requests"] == {"max_body_mb": 8}

    r = await client.patch(
        f"/v1/applications/{app['id']}", headers=members.developer, json={"services": WEB_APP["services"]}
    )
    assert r.status_code == 200, r.text
    assert all("buffer_requests" not in s for s in r.json()["services"])


async def test_the_default_limit_is_10_mib(client, members):
    app = await make_app(client, members.developer, _body(buffer_requests={}))
    (shown,) = [s for s in app["services"] if s["name"] == "web"]
    assert shown["buffer_requests"] == {"max_body_mb": 10}


@pytest.mark.parametrize(
    ("option", "loc"),
    [
        ({"max_body_mb": 0}, "/body/services/0/web/buffer_requests/max_body_mb"),
        ({"max_body_mb": 1025}, "/body/services/0/web/buffer_requests/max_body_mb"),
        ({"max_body_mb": "lots"}, "/body/services/0/web/buffer_requests/max_body_mb"),
        ({"max_body_bytes": 5}, "/body/services/0/web/buffer_requests/max_body_bytes"),
        (True, "/body/services/0/web/buffer_requests"),
    ],
)
async def test_a_bad_option_is_refused_naming_the_field(client, members, option, loc):
    app = await make_app(client, members.developer, _body("probe"))
    r = await client.post(
        f"/v1/environments/{app['environment_id']}/applications",
        headers=members.developer,
        json=_body(buffer_requests=option),
    )
    (err,) = problem(r, 422)["errors"]
    assert err["loc"] == loc, err
