"""Webhook deliveries in the team's audit log and unverified deliveries rate-limited, against the real api:
an accepted, a skipped, an unverified and a replayed delivery each leave one row (the webhook's team, no user, what the
forge sent and what became of it, never the secret, a signature or the body); an unknown webhook's
refusal leaves none. After the limit of unverified deliveries to one webhook (or from one address) further
unverified ones are answered 429 with Retry-After, while a correctly signed delivery still passes."""

from __future__ import annotations

import pytest

from tests.api.forge_bodies import headers, signed_push
from tests.api.test_projects import problem
from tests.api.test_webhooks import deliver, git_app, hook, sha

ROUTE = "POST /v1/webhooks/{webhook_id}"


@pytest.fixture
def api_settings(api_settings):
    return api_settings.model_copy(
        update={
            "webhook_debounce_s": 30.0,  # nothing deploys during these tests
            "webhook_debounce_max_s": 60.0,
            "webhook_failures_per_webhook": 3,
            "webhook_failures_per_address": 5,
            "webhook_failure_window_s": 60.0,
        }
    )


async def _rows(client, members) -> list[dict]:
    r = await client.get("/v1/audit", headers=members.admin, params={"route": "/v1/webhooks/{webhook_id}"})
    assert r.status_code == 200, r.text
    return r.json()


async def test_deliveries_are_audited_without_secret_signature_or_body(client, members, scheduler):
    app = await git_app(client, members)
    created = await hook(client, members, app["id"])
    secret, url = created["secret"], created["url"]
    raw, h = signed_push("github", secret, "main", sha(1), message="ship it")
    assert (await deliver(client, url, raw, h)).status_code == 202
    other, oh = signed_push("gitea", secret, "feature", sha(2))
    assert (await deliver(client, url, other, oh)).json()["result"] == "skipped"
    wrong = headers("gitlab", secret + "x", raw)
    problem(await deliver(client, url, raw, wrong), 401)
    problem(await deliver(client, "/v1/webhooks/" + "0" * 32, raw, h), 401)  # no team to record it for

    problem(await deliver(client, url, raw, h), 409)  # a replay: verified, then refused

    rows = await _rows(client, members)
    assert [(r["action"], r["status"]) for r in rows] == [(ROUTE, 409), (ROUTE, 401), (ROUTE, 200), (ROUTE, 202)]
    replay, refused, skipped, queued = rows
    assert replay["fields"] == ["forge=github", "event=push", "result=refused", "detail=replay"]
    assert all(r["target_id"] == created["id"] and r["user_id"] is None and r["token_id"] is None for r in rows)
    assert queued["fields"][:3] == ["forge=github", "event=push", "result=queued"]
    assert queued["fields"][3].startswith("detail=branch main at " + sha(1))
    assert skipped["fields"][:3] == ["forge=gitea", "event=push", "result=skipped"]
    assert "feature" in skipped["fields"][3]
    assert refused["fields"] == ["forge=gitlab", "event=Push Hook", "result=refused", "detail=not verified"]
    text = repr(rows)
    for leak in (secret, secret + "x", h["X-Hub-Signature-256"], "ship it", raw.decode()[:40]):
        assert leak not in text
    assert await _rows_of_other_team(client, members) == []


async def _rows_of_other_team(client, members) -> list[dict]:
    r = await client.get("/v1/audit", headers=members.other, params={"route": "/v1/webhooks/{webhook_id}"})
    return r.json() if r.status_code == 200 else []


async def test_unverified_deliveries_are_limited_and_signed_ones_still_pass(client, members, scheduler):
    app = await git_app(client, members)
    created = await hook(client, members, app["id"])
    secret, url = created["secret"], created["url"]
    raw, h = signed_push("github", secret, "main", sha(3))
    wrong = headers("github", secret + "x", raw)
    for _ in range(3):
        problem(await deliver(client, url, raw, wrong), 401)
    limited = await deliver(client, url, raw, wrong)
    problem(limited, 429)
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert (await deliver(client, url, raw, h)).status_code == 202  # the forge's own delivery is never locked out
    problem(await deliver(client, url, raw, wrong), 429)  # and it does not lift the limit for guesses
    ping, ph = signed_push("github", secret, "main", sha(4))
    assert (await deliver(client, url, ping, ph)).status_code == 202
    rows = await _rows(client, members)
    assert [r["status"] for r in rows] == [202, 202, 401, 401, 401]  # a 429 leaves no row

    # Another webhook has its own count; the address's own limit (5) then stops guesses at any webhook.
    app2 = await git_app(client, members, "shop")
    created2 = await hook(client, members, app2["id"])
    raw2, h2 = signed_push("github", created2["secret"], "main", sha(5))
    wrong2 = headers("github", "guess", raw2)
    for _ in range(2):
        problem(await deliver(client, created2["url"], raw2, wrong2), 401)
    problem(await deliver(client, created2["url"], raw2, wrong2), 429)
    problem(await deliver(client, "/v1/webhooks/" + "1" * 32, raw2, wrong2), 429)
    assert (await deliver(client, created2["url"], raw2, h2)).status_code == 202
