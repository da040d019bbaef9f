"""Notification channels through the api: the REST routes ask the REAL notifier over the real bus.

The api, the notifier and a stand-in scheduler run in-process on the real nats-server and Postgres; the
channel's endpoint is a local webhook receiver that verifies the HMAC signature.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from berth_api.domain.problems import MEDIA_TYPE
from berth_notifier.settings import NotifierSettings
from tests.api.conftest import make_app, make_project
from tests.support.notifier import serving_notifier
from tests.support.receivers import WebhookReceiver

HOOK_PATH = "/hooks/t0ps3cretHookPath42"
HOOK_SECRET = "whsec-Api-Signing-Secret-43"
SECRETS = (HOOK_PATH, "t0ps3cretHookPath42", HOOK_SECRET)
CHANNELS = "/v1/notification-channels"


def problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == MEDIA_TYPE
    return r.json()


def no_secret_in(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


async def eventually(check: Any, timeout: float = 15.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {result!r}")
        await asyncio.sleep(interval)


@pytest.fixture
async def notifier(api, api_urls, nats_server) -> AsyncIterator[NotifierSettings]:
    """The real notifier, started after the api (which declared the streams), until the test ends."""
    secret = "notifier-api-test-secret-0123456789"
    async with serving_notifier(nats_server.url, api_urls["notifier"], secret) as settings:
        yield settings


async def _ready(client, headers) -> None:
    """Wait until the notifier answers through the api (it serves its queries once wired)."""

    async def answered() -> bool:
        return (await client.get(CHANNELS, headers=headers)).status_code == 200

    await eventually(answered, timeout=30)


@pytest.mark.slow
async def test_a_channel_created_through_the_api_gets_a_deployment_failure(client, members, notifier, scheduler):
    receiver = await WebhookReceiver(HOOK_SECRET).start()
    try:
        await _ready(client, members.developer)
        body = {
            "name": "ops-hook",
            "target": {"kind": "webhook", "url": receiver.url(HOOK_PATH), "signing_secret": HOOK_SECRET},
        }
        r = await client.post(CHANNELS, headers=members.developer, json=body)
        assert r.status_code == 201, r.text
        channel = r.json()
        no_secret_in(r.text)  # the URL (its path is a secret) and the signing secret are write-only
        assert (channel["name"], channel["kind"], channel["enabled"]) == ("ops-hook", "webhook", True)
        assert sorted(channel["secrets_set"]) == ["signing_secret", "url"]
        assert "127.0.0.1" in channel["target"] and channel["settings"] == {}
        me = (await client.get("/v1/me", headers=members.developer)).json()
        assert channel["team_id"] == me["team"]["id"]

        r = await client.post(
            f"{CHANNELS}/{channel['id']}/subscriptions",
            headers=members.developer,
            json={"event_types": ["evt.deployment.failed"]},
        )
        assert r.status_code == 201, r.text
        sub = r.json()
        assert (sub["channel_id"], sub["event_types"]) == (channel["id"], ["evt.deployment.failed"])

        # A deployment started through the api fails in the scheduler: the receiver gets it, signed.
        app = await make_app(client, members.developer)
        r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
        assert r.status_code == 202, r.text
        dep = r.json()
        event_id = await scheduler.failed(dep["id"], app["id"], me["team"]["id"], "readiness check failed: 502")
        [got] = await receiver.wait_accepted(1, timeout=20)
        assert receiver.problems == [] and got.path == HOOK_PATH
        hook = got.json
        assert (hook["id"], hook["type"]) == (event_id, "evt.deployment.failed")
        assert (hook["application_id"], hook["deployment_id"], hook["team_id"]) == (
            app["id"],
            dep["id"],
            me["team"]["id"],
        )
        assert "readiness check failed: 502" in hook["reason"] and hook["test"] is False

        # The delivery log through the api, filtered by channel and status.
        async def delivered() -> list[dict[str, Any]]:
            r = await client.get(
                "/v1/notification-deliveries",
                headers=members.viewer,
                params={"channel_id": channel["id"], "status": "delivered"},
            )
            assert r.status_code == 200, r.text
            return r.json()

        [entry] = await eventually(delivered)
        assert (entry["event_type"], entry["attempts"], entry["test"]) == ("evt.deployment.failed", 1, False)
        assert entry["channel_id"] == channel["id"] and entry["last_error"] is None
        r = await client.get("/v1/notification-deliveries", headers=members.viewer, params={"status": "failed"})
        assert r.status_code == 200 and r.json() == []

        # A test message: answered once delivered.
        r = await client.post(f"{CHANNELS}/{channel['id']}/test", headers=members.developer, json={"wait_s": 5})
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["test"], r.json()["attempts"]) == ("delivered", True, 1)
        await receiver.wait_accepted(2)
        assert receiver.accepted[1].json["test"] is True
        r = await client.post(f"{CHANNELS}/{channel['id']}/test", headers=members.developer)  # no body: defaults
        assert r.status_code == 200 and r.json()["status"] == "delivered", r.text

        # Reads for viewers; the secrets never appear in any answer.
        for path in (
            CHANNELS,
            f"{CHANNELS}/{channel['id']}",
            "/v1/notification-subscriptions",
            "/v1/notification-deliveries",
        ):
            r = await client.get(path, headers=members.viewer)
            assert r.status_code == 200, (path, r.text)
            no_secret_in(r.text)
        listed = (await client.get(CHANNELS, headers=members.viewer)).json()
        assert [c["id"] for c in listed] == [channel["id"]]
        subs = await client.get(
            "/v1/notification-subscriptions", headers=members.viewer, params={"channel_id": channel["id"]}
        )
        assert [s["id"] for s in subs.json()] == [sub["id"]]
        assert len((await client.get("/v1/notification-deliveries", headers=members.viewer)).json()) == 3
    finally:
        await receiver.stop()


@pytest.mark.slow
async def test_changes_need_a_role_and_another_team_sees_nothing(client, members, notifier):
    await _ready(client, members.developer)
    body = {
        "name": "hook",
        "target": {"kind": "webhook", "url": f"http://127.0.0.1:9{HOOK_PATH}", "signing_secret": HOOK_SECRET},
    }
    problem(await client.post(CHANNELS, headers=members.viewer, json=body), 403)
    r = await client.post(CHANNELS, headers=members.developer, json=body)
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    r = await client.post(f"{CHANNELS}/{cid}/subscriptions", headers=members.developer, json={"event_types": ["evt.>"]})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    problem(await client.post(f"{CHANNELS}/{cid}/test", headers=members.viewer), 403)
    problem(await client.patch(f"{CHANNELS}/{cid}", headers=members.viewer, json={"enabled": False}), 403)
    problem(await client.delete(f"{CHANNELS}/{cid}", headers=members.developer), 403)

    # Another team: the channel and its subscription do not exist for it (404 like a missing one).
    other = members.other
    assert (await client.get(CHANNELS, headers=other)).json() == []
    assert (await client.get("/v1/notification-subscriptions", headers=other)).json() == []
    assert (await client.get("/v1/notification-deliveries", headers=other)).json() == []
    for r in (
        await client.get(f"{CHANNELS}/{cid}", headers=other),
        await client.patch(f"{CHANNELS}/{cid}", headers=other, json={"enabled": False}),
        await client.post(f"{CHANNELS}/{cid}/test", headers=other),
        await client.post(f"{CHANNELS}/{cid}/subscriptions", headers=other, json={"event_types": ["evt.>"]}),
        await client.delete(f"{CHANNELS}/{cid}", headers=other),
    ):
        body404 = problem(r, 404)
        assert body404["errors"][0]["loc"] == "/path/channel_id", body404
    problem(await client.delete(f"/v1/notification-subscriptions/{sid}", headers=other), 404)
    assert (await client.get(f"{CHANNELS}/{cid}", headers=members.viewer)).json()["enabled"] is True

    # The notifier's refusals keep their status and name the request's field.
    r = await client.post(CHANNELS, headers=members.developer, json=body)
    assert problem(r, 409)["errors"][0]["loc"] == "/body/name"
    r = await client.post(CHANNELS, headers=members.developer, json={"name": "slack", "target": {"kind": "slack"}})
    assert problem(r, 422)["errors"][0]["loc"] == "/body/target/webhook_url"
    bad = {"name": "x y", "target": {"kind": "slack", "webhook_url": "http://127.0.0.1:9/x"}}
    assert (
        problem(await client.post(CHANNELS, headers=members.developer, json=bad), 422)["errors"][0]["loc"]
        == "/body/name"
    )
    r = await client.post(
        f"{CHANNELS}/{cid}/subscriptions", headers=members.developer, json={"event_types": ["evt.nope.x"]}
    )
    assert problem(r, 422)["errors"][0]["loc"] == "/body/event_types/0"
    # A subscription narrowed to another team's application is refused here.
    foreign = await make_app(client, other, project="theirs")
    r = await client.post(
        f"{CHANNELS}/{cid}/subscriptions",
        headers=members.developer,
        json={"event_types": ["evt.deployment.failed"], "application_id": foreign["id"]},
    )
    assert problem(r, 422)["errors"][0]["loc"] == "/body/application_id"
    mine = await make_project(client, members.developer, "mine")
    r = await client.post(
        f"{CHANNELS}/{cid}/subscriptions",
        headers=members.developer,
        json={"event_types": ["evt.deployment.*"], "project_id": mine["id"]},
    )
    assert r.status_code == 201 and r.json()["project_id"] == mine["id"], r.text

    # Rename and disable; the secrets are kept when the target is not given.
    r = await client.patch(f"{CHANNELS}/{cid}", headers=members.developer, json={"name": "renamed", "enabled": False})
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["enabled"], sorted(r.json()["secrets_set"])) == (
        "renamed",
        False,
        ["signing_secret", "url"],
    )
    no_secret_in(r.text)

    # Deletions are for admins; afterwards the channel is gone.
    assert (await client.delete(f"/v1/notification-subscriptions/{sid}", headers=members.admin)).status_code == 204
    problem(await client.delete(f"/v1/notification-subscriptions/{sid}", headers=members.admin), 404)
    assert (await client.delete(f"{CHANNELS}/{cid}", headers=members.admin)).status_code == 204
    problem(await client.get(f"{CHANNELS}/{cid}", headers=members.viewer), 404)
    assert (await client.get(CHANNELS, headers=members.viewer)).json() == []


async def test_without_the_notifier_the_api_answers_503_naming_it(client, members):
    for r in (
        await client.get(CHANNELS, headers=members.viewer),
        await client.post(CHANNELS, headers=members.developer, json={"name": "a", "target": {"kind": "slack"}}),
        await client.get("/v1/notification-deliveries", headers=members.viewer),
        await client.post(f"{CHANNELS}/{'0' * 32}/test", headers=members.developer),
    ):
        body = problem(r, 503)
        assert "notifier" in body["detail"] and body["type"].endswith("service-unavailable"), body
        assert r.headers["retry-after"] == "5"
    # Invalid input is still refused first, without asking anyone.
    r = await client.get("/v1/notification-deliveries", headers=members.viewer, params={"status": "lost"})
    assert problem(r, 422)["errors"][0]["loc"] == "/query/status"
