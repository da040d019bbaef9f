"""End to end: real events on a real bus reach real (local) endpoints through the notifier."""

from __future__ import annotations

import asyncio
import time
from email.message import EmailMessage

from berth_common.catalogue import (
    BuildFailed,
    ContainerCrashed,
    DeploymentFailed,
    DeploymentSucceeded,
    DiscordTarget,
    EmailTarget,
    SlackTarget,
    TelegramTarget,
    WebhookTarget,
)
from tests.notifier.conftest import wait_for
from tests.notifier.smtp import SmtpReceiver
from tests.support.receivers import (
    HANG,
    DiscordReceiver,
    SlackReceiver,
    TelegramReceiver,
    WebhookReceiver,
)

TEAM, OTHER = "team-acme", "team-other"
HOOK_SECRET = "whsec-0123456789abcdef"
BOT_TOKEN = "123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQ"


def failure(app: str = "app-web", team: str = TEAM, dep: str = "dep-1") -> DeploymentFailed:
    return DeploymentFailed(
        deployment_id=dep,
        application_id=app,
        team_id=team,
        reason="readiness check failed: GET / answered 502 after 30 s",
        failed_in="verifying",
        duration_s=41.5,
    )


async def test_a_deployment_failure_reaches_the_subscribed_channels_and_only_those(start_notifier, tmp_path):
    slack, quiet, filtered, foreign = [await SlackReceiver().start() for _ in range(4)]
    discord = await DiscordReceiver().start()
    telegram = await TelegramReceiver(BOT_TOKEN).start()
    webhook = await WebhookReceiver(HOOK_SECRET).start()
    smtp = SmtpReceiver().start()
    n = await start_notifier(notify_telegram_api_url=telegram.base)
    try:
        wanted = {
            "slack": await n.channel(
                TEAM, "ops-slack", SlackTarget(webhook_url=slack.url()), ["evt.deployment.failed"]
            ),
            "discord": await n.channel(
                TEAM, "ops-discord", DiscordTarget(webhook_url=discord.url()), ["evt.deployment.*"]
            ),
            "telegram": await n.channel(
                TEAM,
                "ops-telegram",
                TelegramTarget(bot_token=BOT_TOKEN, chat_id="-1001234567890"),
                ["evt.deployment.>"],
            ),
            "webhook": await n.channel(
                TEAM,
                "ops-hook",
                WebhookTarget(url=webhook.url(), signing_secret=HOOK_SECRET),
                ["evt.deployment.failed"],
            ),
            "email": await n.channel(
                TEAM,
                "ops-mail",
                EmailTarget(
                    host="127.0.0.1",
                    port=smtp.port,
                    security="plain",
                    from_addr="berth@acme.test",
                    to_addrs=["oncall@acme.test", "lead@acme.test"],
                ),
                ["evt.deployment.failed"],
            ),
        }
        await n.channel(TEAM, "quiet", SlackTarget(webhook_url=quiet.url()), ["evt.deployment.succeeded"])
        await n.channel(
            TEAM,
            "other-app",
            SlackTarget(webhook_url=filtered.url()),
            ["evt.deployment.failed"],
            application_id="app-api",
        )
        await n.channel(OTHER, "foreign", SlackTarget(webhook_url=foreign.url()), ["evt.deployment.failed"])

        event_id = await n.publish(failure())
        for receiver in (slack, discord, telegram, webhook):
            await receiver.wait_accepted(1)
        [mail] = await smtp.wait_messages(1)

        # Exactly the five subscribed channels got a delivery, all delivered at the first attempt.
        async def all_delivered() -> bool:
            return {d.status for d in await n.deliveries(TEAM)} == {"delivered"}

        await wait_for(all_delivered)
        log = await n.deliveries(TEAM)
        assert sorted(d.channel_id for d in log) == sorted(c.id for c in wanted.values())
        assert {(d.status, d.attempts, d.event_type) for d in log} == {("delivered", 1, "evt.deployment.failed")}
        assert await n.deliveries(OTHER) == []
        await asyncio.sleep(0.5)
        assert quiet.requests == filtered.requests == foreign.requests == []
        for r in (slack, discord, telegram, webhook):
            assert r.problems == [] and len(r.requests) == 1

        link = "https://berth.test/applications/app-web/deployments/dep-1"
        body = slack.accepted[0].json
        assert "readiness check failed" in body["blocks"][1]["text"]["text"]
        assert body["blocks"][3]["elements"][0]["url"] == link
        embed = discord.accepted[0].json["embeds"][0]
        assert embed["title"] == "Deployment failed" and embed["url"] == link
        assert telegram.accepted[0].json["chat_id"] == -1001234567890
        assert "<b>Reason:</b> readiness check failed" in telegram.accepted[0].json["text"]
        hook = webhook.accepted[0].json
        assert (hook["id"], hook["type"], hook["url"]) == (event_id, "evt.deployment.failed", link)
        assert hook["data"]["failed_in"] == "verifying"
        assert isinstance(mail, EmailMessage)
        assert mail["Subject"] == "[Berth] Deployment failed: app-web"
        assert smtp.envelopes == [("berth@acme.test", ["oncall@acme.test", "lead@acme.test"])]
        assert mail.get_content_type() == "multipart/alternative"
        text, html = (part.get_content() for part in mail.iter_parts())
        assert "Reason: readiness check failed: GET / answered 502 after 30 s" in text
        assert f'<a href="{link}">Open in Berth</a>' in html
    finally:
        for r in (slack, quiet, filtered, foreign, discord, telegram, webhook):
            await r.stop()
        smtp.stop()


async def test_a_receiver_failing_twice_gets_the_message_once_after_retries(notifier):
    hook = await WebhookReceiver(HOOK_SECRET, script=[500, 500]).start()
    try:
        channel = await notifier.channel(
            TEAM, "flaky", WebhookTarget(url=hook.url(), signing_secret=HOOK_SECRET), ["evt.deployment.failed"]
        )
        event_id = await notifier.publish(failure())
        [got] = await hook.wait_accepted(1)
        assert got.json["id"] == event_id

        async def settled() -> bool:
            return [d.status for d in await notifier.deliveries(TEAM, channel.id)] == ["delivered"]

        await wait_for(settled)
        [entry] = await notifier.deliveries(TEAM, channel.id)
        assert entry.attempts == 3
        # The receiver echoed the request path; the path is part of the (secret) URL, so it is redacted.
        assert entry.last_error == "HTTP 500: scripted failure for ***"
        await asyncio.sleep(1.0)  # nothing more is sent: delivered once
        assert len(hook.requests) == 3 and len(hook.accepted) == 1
        # Each attempt was signed anew: three different signatures over three timestamps/bodies.
        assert len({r.headers["X-Berth-Signature"] for r in hook.requests}) == 3
    finally:
        await hook.stop()


async def test_a_dead_endpoint_does_not_delay_other_channels_or_teams(start_notifier):
    dead = await WebhookReceiver(HOOK_SECRET, script=[HANG] * 20).start()
    mine, theirs = await SlackReceiver().start(), await SlackReceiver().start()
    n = await start_notifier(notify_timeout_s=5.0)
    try:
        hung = await n.channel(
            TEAM, "dead", WebhookTarget(url=dead.url(), signing_secret=HOOK_SECRET), ["evt.deployment.failed"]
        )
        await n.channel(TEAM, "alive", SlackTarget(webhook_url=mine.url()), ["evt.deployment.failed"])
        await n.channel(OTHER, "alive", SlackTarget(webhook_url=theirs.url()), ["evt.deployment.failed"])
        latencies = []
        for i in range(3):
            started = time.monotonic()
            await n.publish(failure(dep=f"dep-{i}"))
            await n.publish(failure(team=OTHER, app="app-x", dep=f"dep-x{i}"))
            await mine.wait_accepted(i + 1)
            await theirs.wait_accepted(i + 1)
            latencies.append(max(mine.accepted[i].at, theirs.accepted[i].at) - started)
        assert max(latencies) < 1.0, latencies
        assert len(dead.requests) >= 1  # the dead endpoint was being tried all along

        async def timed_out() -> bool:
            return any(d.last_error for d in await n.deliveries(TEAM, hung.id))

        await wait_for(timed_out, timeout=10)
        entries = await n.deliveries(TEAM, hung.id)
        assert {d.status for d in entries} <= {"pending", "sending"}
        assert any(d.last_error == "no answer within 5 s" for d in entries)
    finally:
        for r in (dead, mine, theirs):
            await r.stop()


async def test_a_burst_of_crashes_becomes_one_message_with_the_count(start_notifier):
    slack = await SlackReceiver().start()
    # the group's window is wide enough for the burst to arrive within it on a busy machine (under a full
    # suite's load on two cores the notifier took more than 6 s to take in 50 events)
    n = await start_notifier(notify_group_wait_s=15.0)
    try:
        channel = await n.channel(TEAM, "crashes", SlackTarget(webhook_url=slack.url()), ["evt.container.crashed"])
        # The notifier learns which team app-9 belongs to from a deployment event; the crash events
        # below carry only the application id.
        await n.publish(DeploymentSucceeded(deployment_id="dep-9", application_id="app-9", team_id=TEAM, image="web:9"))
        await n.knows_application("app-9")
        started = time.monotonic()
        crashes = [
            ContainerCrashed(
                container_id=f"c{i:02d}" * 8,
                container_name="berth-app-9-web-1",
                application_id="app-9",
                exit_code=137,
                oom_killed=True,
            )
            for i in range(50)
        ]
        await asyncio.gather(*(n.publish(crash) for crash in crashes))
        [message] = await slack.wait_accepted(1, timeout=40)
        assert time.monotonic() - started < 60
        header = message.json["blocks"][0]["text"]["text"]
        assert header.startswith("Container crashed (50 times")
        assert "Container berth-app-9-web-1 of application app-9 was killed: out of memory" in message.json["text"]
        await asyncio.sleep(2.0)
        assert len(slack.requests) == 1
        [entry] = await n.deliveries(TEAM, channel.id)
        assert (entry.count, entry.status, entry.title) == (50, "delivered", header)
    finally:
        await slack.stop()


async def test_the_delivery_log_shows_status_attempts_and_last_error(start_notifier):
    refusing = await SlackReceiver(script=[404]).start()  # Slack's answer for a revoked webhook
    broken = await DiscordReceiver(script=[502] * 10).start()
    n = await start_notifier(notify_max_attempts=3)
    try:
        gone = await n.channel(TEAM, "revoked", SlackTarget(webhook_url=refusing.url()), ["evt.build.failed"])
        down = await n.channel(TEAM, "down", DiscordTarget(webhook_url=broken.url()), ["evt.build.failed"])
        await n.publish(DeploymentSucceeded(deployment_id="dep-b", application_id="app-b", team_id=TEAM, image="b:1"))
        # A build failure names the application, not the team: the notifier knows app-b's team from above.
        await n.publish(
            BuildFailed(
                build_id="bld-1",
                deployment_id="dep-b",
                application_id="app-b",
                reason="COPY failed: file not found: requirements.txt",
                stage="build",
            )
        )

        async def settled() -> bool:
            log = await n.deliveries(TEAM)
            return len(log) == 2 and {d.status for d in log} == {"failed"}

        await wait_for(settled, timeout=15)
        by_channel = {d.channel_id: d for d in await n.deliveries(TEAM)}
        assert by_channel[gone.id].attempts == 1  # a 4xx is not retried
        assert by_channel[gone.id].last_error == "HTTP 404: scripted failure for ***"
        assert by_channel[down.id].attempts == 3
        assert by_channel[down.id].last_error.startswith("HTTP 502")
        assert len(broken.requests) == 3
        failed_only = await n.deliveries(TEAM, down.id)
        assert [d.status for d in failed_only] == ["failed"]
    finally:
        await refusing.stop()
        await broken.stop()


async def test_a_channel_is_rate_limited_and_honours_retry_after(start_notifier):
    slack = await SlackReceiver(script=[(429, {"Retry-After": "1"})]).start()
    n = await start_notifier(notify_rate_per_minute=120.0, notify_burst=2)
    try:
        await n.channel(TEAM, "limited", SlackTarget(webhook_url=slack.url()), ["evt.deployment.failed"])
        started = time.monotonic()
        for i in range(5):
            await n.publish(failure(dep=f"dep-r{i}"))
        await slack.wait_accepted(5, timeout=20)
        offsets = [r.at - started for r in slack.requests]
        # The 429 paused the whole channel for a second; then the bucket (burst 2, 2 per second, full after
        # the pause) lets two go at once and each next one only after another 0.5 s: the k-th delivery after
        # the pause comes (k - 2) x 0.5 s after the first at the earliest. The receiver's clock adds each
        # request's own latency (up to ~0.13 s on a loaded machine), hence the tolerance.
        assert offsets[1] - offsets[0] >= 0.95, offsets
        after = offsets[1:]
        assert all(t - after[0] >= (k - 1) * 0.5 - 0.15 for k, t in enumerate(after[2:], start=2)), offsets
        assert len(slack.requests) == 6
    finally:
        await slack.stop()
