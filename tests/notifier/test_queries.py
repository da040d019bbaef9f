"""The channel queries over the bus: team isolation, problems naming the field, secrets that never leak."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import asyncpg
import nats
import pytest
import structlog

from berth_common.bus import subscriptions_confirmed
from berth_common.catalogue import (
    ChannelCreate,
    ChannelDelete,
    ChannelGet,
    ChannelList,
    ChannelListReply,
    ChannelReply,
    ChannelTest,
    ChannelUpdate,
    DeletedReply,
    DeliveryReply,
    DeploymentFailed,
    DiscordTarget,
    EmailTarget,
    SlackTarget,
    SubscriptionCreate,
    SubscriptionDelete,
    SubscriptionList,
    SubscriptionListReply,
    SubscriptionReply,
    TelegramTarget,
    WebhookTarget,
)
from tests.notifier.conftest import wait_for
from tests.notifier.smtp import SmtpReceiver
from tests.support.receivers import DiscordReceiver, SlackReceiver, TelegramReceiver, WebhookReceiver

A, B = "team-a", "team-b"
SLACK_TOKEN = "T0SECRET/B0SECRET/slackSecretToken42"
DISCORD_TOKEN = "discordSecretToken-43"
BOT_TOKEN = "987654321:TelegramSecretTokenAAAAAAAAAAA44"
SMTP_PASSWORD = "smtp-Secret-Password-45"
HOOK_SECRET = "webhook-Secret-Signing-46"
HOOK_PATH = "/hooks/webhookSecretPath47"
SECRETS = (
    SLACK_TOKEN,
    DISCORD_TOKEN,
    BOT_TOKEN,
    SMTP_PASSWORD,
    HOOK_SECRET,
    HOOK_PATH,
    "slackSecretToken42",
    "987654321:TelegramSecret",
)


async def test_a_team_never_sees_or_touches_another_teams_channels(notifier):
    slack = await SlackReceiver().start()
    try:
        mine = await notifier.channel(A, "alerts", SlackTarget(webhook_url=slack.url()), ["evt.deployment.failed"])
        [sub] = (await notifier.ask(SubscriptionList(team_id=A), SubscriptionListReply)).subscriptions
        ask = notifier.ask
        assert (await ask(ChannelList(team_id=B), ChannelListReply)).channels == []
        for reply in (
            await ask(ChannelGet(team_id=B, channel_id=mine.id), ChannelReply),
            await ask(ChannelUpdate(team_id=B, channel_id=mine.id, enabled=False), ChannelReply),
            await ask(ChannelDelete(team_id=B, channel_id=mine.id), DeletedReply),
            await ask(ChannelTest(team_id=B, channel_id=mine.id), DeliveryReply),
            await ask(SubscriptionCreate(team_id=B, channel_id=mine.id, event_types=["evt.>"]), SubscriptionReply),
            await ask(ChannelGet(team_id=A, channel_id="no-such-channel"), ChannelReply),
        ):
            # Exactly what a missing channel answers: 404 naming the field.
            assert reply.problem is not None
            assert (reply.problem.status, reply.problem.field) == (404, "channel_id")
        assert (await ask(SubscriptionList(team_id=B), SubscriptionListReply)).subscriptions == []
        gone = await ask(SubscriptionDelete(team_id=B, subscription_id=sub.id), DeletedReply)
        assert gone.problem is not None and gone.problem.status == 404
        assert await notifier.deliveries(B) == []
        assert slack.requests == []  # B's test query sent nothing
        # A's channel is untouched.
        again = (await ask(ChannelGet(team_id=A, channel_id=mine.id), ChannelReply)).channel
        assert again == mine
        assert [s.id for s in (await ask(SubscriptionList(team_id=A), SubscriptionListReply)).subscriptions] == [sub.id]
    finally:
        await slack.stop()


async def test_bad_input_gets_a_problem_naming_the_field_without_echoing_it(notifier):
    cases = [
        (
            {"team_id": A, "name": "Bad Name", "target": {"kind": "slack", "webhook_url": "https://x.test/s"}},
            "name",
            422,
        ),
        ({"team_id": A, "name": "s", "target": {"kind": "slack"}}, "target.webhook_url", 422),
        (
            {"team_id": A, "name": "s", "target": {"kind": "slack", "webhook_url": "ftp://secret@x/y"}},
            "target.webhook_url",
            422,
        ),
        (
            {"team_id": A, "name": "d", "target": {"kind": "discord", "webhook_url": "https://x.test/not-a-hook"}},
            "target.webhook_url",
            422,
        ),
        (
            {"team_id": A, "name": "t", "target": {"kind": "telegram", "bot_token": "nope", "chat_id": "1"}},
            "target.bot_token",
            422,
        ),
        (
            {
                "team_id": A,
                "name": "w",
                "target": {"kind": "webhook", "url": "https://x.test", "signing_secret": "short"},
            },
            "target.signing_secret",
            422,
        ),
        (
            {
                "team_id": A,
                "name": "m",
                "target": {
                    "kind": "email",
                    "host": "smtp.x.test",
                    "security": "plain",
                    "username": "u",
                    "password": SMTP_PASSWORD,
                    "from_addr": "a@x.test",
                    "to_addrs": ["b@x.test"],
                },
            },
            "target.security",
            422,
        ),
        (
            {
                "team_id": A,
                "name": "m",
                "target": {
                    "kind": "email",
                    "host": "smtp.x.test",
                    "from_addr": "a@x.test",
                    "to_addrs": ["b@x.test\r\nBcc: all@x.test"],
                },
            },
            "target.to_addrs.0",
            422,
        ),
        ({"team_id": A, "name": "p", "target": {"kind": "pager", "url": "https://x.test"}}, "target", 422),
    ]
    for data, field, status in cases:
        resp = await notifier.bus.nc.request("rpc.notifier.channel.create", _envelope(data), timeout=5)
        body = json.loads(resp.data)
        assert body["ok"] is True
        problem = body["data"]["problem"]
        assert (problem["status"], problem["field"]) == (status, field), (data, problem)
        assert SMTP_PASSWORD not in resp.data.decode() and "secret@x" not in resp.data.decode()
    created = await notifier.ask(
        ChannelCreate(team_id=A, name="ok", target=SlackTarget(webhook_url="https://hooks.example.test/services/x")),
        ChannelReply,
    )
    assert created.channel is not None
    dup = await notifier.ask(
        ChannelCreate(team_id=A, name="ok", target=SlackTarget(webhook_url="https://hooks.example.test/services/x")),
        ChannelReply,
    )
    assert dup.problem is not None and (dup.problem.status, dup.problem.field) == (409, "name")
    sub = await notifier.ask(
        SubscriptionCreate(
            team_id=A, channel_id=created.channel.id, event_types=["evt.deployment.failed", "evt.log.>"]
        ),
        SubscriptionReply,
    )
    assert sub.problem is not None and (sub.problem.status, sub.problem.field) == (422, "event_types.1")
    kind = await notifier.ask(
        ChannelUpdate(team_id=A, channel_id=created.channel.id, target=DiscordTarget(webhook_url="https://x.test")),
        ChannelReply,
    )
    assert kind.problem is not None and kind.problem.field == "target.kind"


def _envelope(data: dict) -> bytes:
    from berth_common.envelope import Envelope

    return Envelope(source="berth/test", type="rpc.channel.create", data=data).to_bytes()


async def test_secrets_never_appear_in_replies_logs_bus_traffic_or_the_table(start_notifier, tmp_path):
    # Every receiver answers 500 once, echoing the request path (which holds the Slack, Discord and
    # Telegram secrets) into the error body the notifier records.
    slack = await SlackReceiver(script=[500]).start()
    discord = await DiscordReceiver(script=[500], token=DISCORD_TOKEN).start()
    telegram = await TelegramReceiver(BOT_TOKEN, script=[500]).start()
    hook = await WebhookReceiver(HOOK_SECRET, script=[500]).start()
    smtp = SmtpReceiver(tls="starttls", cert_dir=tmp_path / "cert", credentials=("berth", SMTP_PASSWORD)).start()

    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    handler.addFilter(lambda r: not r.name.startswith(("mail.log", "aiohttp")))  # the fakes' own logs
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    old_structlog = structlog.get_config()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.JSONRenderer(default=str),
        ],
        logger_factory=structlog.PrintLoggerFactory(file=logs),
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=False,
    )
    n = await start_notifier(notify_telegram_api_url=telegram.base, notify_smtp_ca_file=smtp.cert_file)
    traffic: list[tuple[str, bytes]] = []
    spy = await nats.connect(n.settings.nats_url)

    async def record(msg):
        traffic.append((msg.subject, msg.data))

    await spy.subscribe(">", cb=record)
    await subscriptions_confirmed(spy)
    try:
        events = ["evt.deployment.failed"]
        channels = [
            await n.channel(A, "slack", SlackTarget(webhook_url=slack.url(SLACK_TOKEN)), events),
            await n.channel(A, "discord", DiscordTarget(webhook_url=discord.url()), events),
            await n.channel(A, "telegram", TelegramTarget(bot_token=BOT_TOKEN, chat_id="@berth_ops"), events),
            await n.channel(A, "hook", WebhookTarget(url=hook.url(HOOK_PATH), signing_secret=HOOK_SECRET), events),
            await n.channel(
                A,
                "mail",
                EmailTarget(
                    host="127.0.0.1",
                    port=smtp.port,
                    security="starttls",
                    username="berth",
                    password=SMTP_PASSWORD,
                    from_addr="berth@a.test",
                    to_addrs=["ops@a.test"],
                ),
                events,
            ),
        ]
        views = {c.name: c for c in channels}
        assert views["slack"].secrets_set == ["webhook_url"] and views["slack"].settings == {}
        assert views["slack"].target == f"127.0.0.1:{slack.port}"
        assert views["hook"].secrets_set == ["signing_secret", "url"]
        assert views["hook"].target == f"http://127.0.0.1:{hook.port}"
        assert views["mail"].secrets_set == ["password"] and views["mail"].settings["username"] == "berth"
        assert views["telegram"].target == "chat @berth_ops"
        # An update without the secret keeps it; with one, replaces it (still never shown).
        renamed = await n.ask(
            ChannelUpdate(
                team_id=A,
                channel_id=views["mail"].id,
                name="mail-ops",
                target=EmailTarget(
                    host="127.0.0.1",
                    port=smtp.port,
                    security="starttls",
                    username="berth",
                    from_addr="berth@a.test",
                    to_addrs=["ops@a.test", "cto@a.test"],
                ),
            ),
            ChannelReply,
        )
        assert renamed.channel is not None and renamed.channel.secrets_set == ["password"]
        await n.ask(ChannelList(team_id=A), ChannelListReply)

        await n.publish(DeploymentFailed(deployment_id="d1", application_id="app", team_id=A, reason="exit 1"))
        for r in (slack, discord, telegram, hook):
            await r.wait_accepted(1, timeout=15)
        await smtp.wait_messages(1)

        async def all_delivered() -> bool:
            return {d.status for d in await n.deliveries(A)} == {"delivered"}

        await wait_for(all_delivered, timeout=15)
        log = await n.deliveries(A)
        errors = sorted(d.last_error for d in log if d.last_error)
        assert errors == ["HTTP 500: scripted failure for ***"] * 3 + [
            "HTTP 500: scripted failure for /bot***/sendMessage"
        ]
        tested = await n.ask(ChannelTest(team_id=A, channel_id=views["mail"].id), DeliveryReply)
        assert tested.delivery is not None and tested.delivery.status == "delivered"
        assert len(smtp.messages) == 2 and smtp.envelopes[-1][1] == ["ops@a.test", "cto@a.test"]

        conn = await asyncpg.connect(n.db_url.replace("+asyncpg", ""))
        rows = await conn.fetch("SELECT * FROM channels")
        stored = [await conn.fetch(f"SELECT * FROM {t}") for t in ("deliveries", "subscriptions", "outbox")]
        await conn.close()
        at_rest = repr([dict(r) for r in rows]) + repr([dict(r) for t in stored for r in t])
        blobs = b"".join(bytes(r["secret_blob"]) for r in rows)
        await asyncio.sleep(0.2)
        wire = [data for subject, data in traffic if not subject.startswith("rpc.")]  # requests carry them in
        assert len(wire) > 10
        captured = logs.getvalue()
        assert "notification delivered" in captured and "notification attempt failed" in captured
        for secret in SECRETS:
            for place, text in (("replies", "\n".join(n.replies)), ("logs", captured), ("table", at_rest)):
                assert secret not in text, (secret, place)
            assert secret.encode() not in blobs
            assert all(secret.encode() not in data for data in wire), secret
    finally:
        structlog.configure(**old_structlog)
        root.removeHandler(handler)
        root.setLevel(old_level)
        await spy.close()
        for r in (slack, discord, telegram, hook):
            await r.stop()
        smtp.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # implicit TLS is TLS
async def test_the_test_query_reports_the_outcome_of_one_attempt(start_notifier, tmp_path):
    ok = await SlackReceiver().start()
    refusing = await DiscordReceiver(token="other-token").start()
    implicit = SmtpReceiver(tls="tls", cert_dir=tmp_path / "tls", credentials=("u", "pw-implicit")).start()
    n = await start_notifier(notify_smtp_ca_file=implicit.cert_file)
    try:
        good = await n.channel(A, "good", SlackTarget(webhook_url=ok.url()), ["evt.deployment.failed"])
        await n.ask(ChannelUpdate(team_id=A, channel_id=good.id, enabled=False), ChannelReply)
        reply = await n.ask(ChannelTest(team_id=A, channel_id=good.id), DeliveryReply)
        assert reply.delivery is not None
        assert (reply.delivery.status, reply.delivery.attempts, reply.delivery.test) == ("delivered", 1, True)
        assert ok.accepted[0].json["blocks"][0]["text"]["text"] == "Test message from Berth"

        wrong = DiscordTarget(webhook_url=refusing.base + "/api/webhooks/123456789012345678/wrong-token")
        bad = await n.channel(A, "bad", wrong, ["evt.deployment.failed"])
        reply = await n.ask(ChannelTest(team_id=A, channel_id=bad.id), DeliveryReply)
        assert reply.delivery is not None
        assert (reply.delivery.status, reply.delivery.attempts) == ("failed", 1)
        assert reply.delivery.last_error == 'HTTP 404: {"message": "Unknown Webhook", "code": 10015}'

        mail = await n.channel(
            A,
            "tls",
            EmailTarget(
                host="127.0.0.1",
                port=implicit.port,
                security="tls",
                username="u",
                password="pw-implicit",
                from_addr="b@a.test",
                to_addrs=["o@a.test"],
            ),
            ["evt.deployment.failed"],
        )
        reply = await n.ask(ChannelTest(team_id=A, channel_id=mail.id), DeliveryReply)
        assert reply.delivery is not None and reply.delivery.status == "delivered", reply.delivery
        [msg] = implicit.messages
        assert msg["Subject"] == "[Berth] Test message from Berth: team-a"
        assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    finally:
        await ok.stop()
        await refusing.stop()
        implicit.stop()


async def test_secrets_survive_a_key_rotation(start_notifier):
    slack = await SlackReceiver().start()
    try:
        n = await start_notifier(secret_key="the-old-secret-key-0123456789")
        channel = await n.channel(A, "rotated", SlackTarget(webhook_url=slack.url()), ["evt.deployment.failed"])
        conn = await asyncpg.connect(n.db_url.replace("+asyncpg", ""))
        before = await conn.fetchval("SELECT secret_blob FROM channels WHERE id = $1", channel.id)
        await start_notifier.stop_all()

        n = await start_notifier(
            secret_key="the-new-secret-key-0123456789", notify_previous_secret_keys=["the-old-secret-key-0123456789"]
        )
        after = await conn.fetchval("SELECT secret_blob FROM channels WHERE id = $1", channel.id)
        assert after[1:9] != before[1:9]  # re-encrypted under the new key's id
        reply = await n.ask(ChannelTest(team_id=A, channel_id=channel.id), DeliveryReply)
        assert reply.delivery is not None and reply.delivery.status == "delivered"
        await start_notifier.stop_all()

        # Without the old key a channel written under it cannot be read, and the reply says so.
        await conn.execute("UPDATE channels SET secret_blob = $1 WHERE id = $2", before, channel.id)
        n = await start_notifier(secret_key="the-new-secret-key-0123456789")
        reply = await n.ask(ChannelUpdate(team_id=A, channel_id=channel.id, target=SlackTarget()), ChannelReply)
        assert reply.problem is not None and (reply.problem.status, reply.problem.type) == (409, "secret-unavailable")
        await conn.close()
    finally:
        await slack.stop()
