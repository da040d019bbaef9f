"""The outbound rule in the notifier: refused at creation (naming the field), at send time (naming the rule),
and on a redirect; an allowed target is reached."""

from __future__ import annotations

import socket

import pytest

from berth_common.catalogue import (
    ChannelCreate,
    ChannelReply,
    ChannelTest,
    DeliveryReply,
    EmailTarget,
    SlackTarget,
    WebhookTarget,
)
from tests.notifier.smtp import SmtpReceiver
from tests.support.receivers import SlackReceiver, WebhookReceiver

TEAM = "team-acme"
SECRET = "whsec-0123456789abcdef"
NOTHING_ALLOWED = {"outbound_allow": "", "notify_allow_private_targets": None}


@pytest.mark.parametrize(
    ("target", "field", "rule"),
    [
        (SlackTarget(webhook_url="http://169.254.169.254/latest/meta-data/"), "target.webhook_url", "metadata"),
        (WebhookTarget(url="http://0x7f.1:9/hook", signing_secret=SECRET), "target.url", "loopback"),
        (EmailTarget(host="127.0.0.1", from_addr="a@b.example", to_addrs=["c@d.example"]), "target.host", "loopback"),
    ],
)
async def test_creating_a_channel_to_a_refused_target_is_a_422_naming_the_field(start_notifier, target, field, rule):
    n = await start_notifier(**NOTHING_ALLOWED)
    reply = await n.ask(ChannelCreate(team_id=TEAM, name="x", target=target), ChannelReply)
    assert reply.channel is None and reply.problem is not None
    assert (reply.problem.status, reply.problem.field) == (422, field)
    assert reply.problem.detail == f"names a host the outbound rule refuses ({rule}; an admin can allow it)"


async def test_a_name_that_resolves_to_loopback_is_refused_at_send_time(start_notifier, tmp_path):
    """The host as written is a plain name (accepted at creation); the addresses it resolves to are checked
    when the notifier connects, for HTTP and for SMTP."""
    name = socket.gethostname().lower()
    addresses = {info[4][0] for info in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)}
    if not all(a.startswith("127.") or a == "::1" for a in addresses):
        pytest.skip(f"this machine's name {name} does not resolve to loopback only")
    hook = await WebhookReceiver(SECRET).start()
    smtp = SmtpReceiver(tls="plain", cert_dir=tmp_path / "tls").start()
    n = await start_notifier(**NOTHING_ALLOWED)
    try:
        url = hook.url().replace("127.0.0.1", name)
        made = await n.ask(
            ChannelCreate(team_id=TEAM, name="hook", target=WebhookTarget(url=url, signing_secret=SECRET)), ChannelReply
        )
        mail_target = EmailTarget(
            host=name, port=smtp.port, security="plain", from_addr="a@b.example", to_addrs=["c@d.example"]
        )
        mail = await n.ask(ChannelCreate(team_id=TEAM, name="mail", target=mail_target), ChannelReply)
        assert made.channel is not None and mail.channel is not None
        for channel in (made.channel, mail.channel):
            reply = await n.ask(ChannelTest(team_id=TEAM, channel_id=channel.id), DeliveryReply)
            assert reply.delivery is not None
            assert (reply.delivery.status, reply.delivery.attempts) == ("failed", 1)
            address = sorted(addresses)[0]
            assert reply.delivery.last_error is not None
            assert f"resolves to {address}: outbound rule: {address} is a loopback address" in reply.delivery.last_error
        assert hook.requests == [] and smtp.messages == []
    finally:
        await hook.stop()
        smtp.stop()


@pytest.mark.parametrize(
    ("location", "shown"),
    [
        (
            "http://169.254.169.254/latest/meta-data/",
            "redirect to http://169.254.169.254: outbound rule: 169.254.169.254 is a cloud metadata address",
        ),
        ("http://127.0.0.1:1/admin", "redirect to http://127.0.0.1: outbound rule: 127.0.0.1 is a loopback address"),
    ],
)
async def test_a_redirect_to_a_refused_target_fails_the_delivery_with_the_rule(start_notifier, location, shown):
    """The receiver itself is allowed (loopback port of this test: ``127.0.0.1/32`` would also allow the
    redirect's 127.0.0.1, so the allowance names the receiver's host by name instead)."""
    hook = await SlackReceiver(script=[(302, {"Location": location})]).start()
    n = await start_notifier(outbound_allow="localhost")
    try:
        url = hook.url().replace("127.0.0.1", "localhost")
        channel = await n.channel(TEAM, "moved", SlackTarget(webhook_url=url), ["evt.deployment.failed"])
        reply = await n.ask(ChannelTest(team_id=TEAM, channel_id=channel.id), DeliveryReply)
        assert reply.delivery is not None
        assert (reply.delivery.status, reply.delivery.last_error) == (
            "failed",
            shown + "; an admin can allow it (BERTH_OUTBOUND_ALLOW, or the team's outbound allowance)",
        )
        assert len(hook.requests) == 1
        again = await n.ask(ChannelTest(team_id=TEAM, channel_id=channel.id), DeliveryReply)
        assert again.delivery is not None and again.delivery.status == "delivered"  # the script is used up
    finally:
        await hook.stop()


async def test_an_allowed_target_is_reached(start_notifier, tmp_path):
    hook = await WebhookReceiver(SECRET).start()
    smtp = SmtpReceiver(tls="plain", cert_dir=tmp_path / "tls").start()
    n = await start_notifier(outbound_allow="127.0.0.1/32")
    try:
        made = await n.channel(TEAM, "hook", WebhookTarget(url=hook.url(), signing_secret=SECRET), ["evt.build.failed"])
        target = EmailTarget(
            host="127.0.0.1", port=smtp.port, security="plain", from_addr="a@b.example", to_addrs=["c@d.example"]
        )
        mail = await n.channel(TEAM, "mail", target, ["evt.build.failed"])
        for channel in (made, mail):
            reply = await n.ask(ChannelTest(team_id=TEAM, channel_id=channel.id), DeliveryReply)
            assert reply.delivery is not None and reply.delivery.status == "delivered", reply.delivery
        assert len(hook.accepted) == 1
        assert len(await smtp.wait_messages(1)) == 1
    finally:
        await hook.stop()
        smtp.stop()


async def test_an_allowance_for_one_team_is_not_another_teams(start_notifier):
    hook = await WebhookReceiver(SECRET).start()
    n = await start_notifier(**NOTHING_ALLOWED, outbound_allow_teams={TEAM: ["127.0.0.1/32"]})
    try:
        target = WebhookTarget(url=hook.url(), signing_secret=SECRET)
        mine = await n.channel(TEAM, "hook", target, ["evt.build.failed"])
        reply = await n.ask(ChannelTest(team_id=TEAM, channel_id=mine.id), DeliveryReply)
        assert reply.delivery is not None and reply.delivery.status == "delivered"
        theirs = await n.ask(ChannelCreate(team_id="team-other", name="hook", target=target), ChannelReply)
        assert theirs.problem is not None and (theirs.problem.status, theirs.problem.field) == (422, "target.url")
        assert len(hook.accepted) == 1
    finally:
        await hook.stop()
