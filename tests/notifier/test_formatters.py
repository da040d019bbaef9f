"""Formatters are pure: exact payloads for a known event, and every limit of the target APIs held."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from berth_notifier.domain import chat, mail
from berth_notifier.domain.notice import render
from tests.support.receivers import discord_problems, slack_problems, telegram_problems

T = datetime(2025, 3, 1, 12, 30, 5, tzinfo=UTC)
LINK = "https://berth.example/applications/app-7/deployments/dep-42"


def failed():
    data = {
        "deployment_id": "dep-42",
        "application_id": "app-7",
        "team_id": "team-a",
        "reason": "health check <failed> & *stopped*",
        "failed_in": "verifying",
    }
    return render("evt.deployment.failed", data, event_id="e1", time=T, public_url="https://berth.example/")


def test_slack_block_kit_payload():
    assert chat.slack(failed()) == {
        "text": ":red_circle: Deployment failed: Deployment dep-42 of application app-7 failed "
        "(team team-a, application app-7)",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Deployment failed", "emoji": True}},
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "Deployment dep-42 of application app-7 failed\n"
                    "*Reason:* health check &lt;failed&gt; &amp; *stopped*",
                },
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": "*Team*\nteam-a"},
                    {"type": "mrkdwn", "text": "*Application*\napp-7"},
                    {"type": "mrkdwn", "text": "*Deployment ID*\ndep-42"},
                    {"type": "mrkdwn", "text": "*Failed in*\nverifying"},
                ],
            },
            {
                "type": "actions",
                "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open in Berth"}, "url": LINK}],
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": "evt.deployment.failed · "
                        "<!date^1740832205^{date_short_pretty} {time}|2025-03-01T12:30:05+00:00>",
                    }
                ],
            },
        ],
    }


def test_discord_embed_payload():
    assert chat.discord(failed(), "Berth ops") == {
        "username": "Berth ops",
        "embeds": [
            {
                "title": "Deployment failed",
                "description": "Deployment dep-42 of application app-7 failed\n"
                "**Reason:** health check <failed\\> & \\*stopped\\*",
                "color": 0xD93F0B,
                "fields": [
                    {"name": "Team", "value": "team-a", "inline": True},
                    {"name": "Application", "value": "app-7", "inline": True},
                    {"name": "Deployment ID", "value": "dep-42", "inline": True},
                    {"name": "Failed in", "value": "verifying", "inline": True},
                ],
                "timestamp": "2025-03-01T12:30:05+00:00",
                "footer": {"text": "evt.deployment.failed"},
                "url": LINK,
            }
        ],
        "allowed_mentions": {"parse": []},
    }


def test_telegram_send_message_payload():
    assert chat.telegram(failed(), "-100123") == {
        "chat_id": -100123,
        "text": "\U0001f534 <b>Deployment failed</b>\n"
        "Deployment dep-42 of application app-7 failed\n"
        "<b>Reason:</b> health check &lt;failed&gt; &amp; *stopped*\n"
        "<b>Team:</b> team-a\n<b>Application:</b> app-7\n<b>Deployment ID:</b> dep-42\n<b>Failed in:</b> verifying\n"
        f'<a href="{LINK}">Open in Berth</a>',
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }
    assert chat.telegram(failed(), "@ops_room")["chat_id"] == "@ops_room"


def test_email_subject_text_and_html():
    n = failed()
    assert mail.email_subject(n) == "[Berth] Deployment failed: app-7"
    assert mail.email_text(n) == (
        "Deployment failed\n\nDeployment dep-42 of application app-7 failed\n\n"
        "Reason: health check <failed> & *stopped*\n\n"
        "Team: team-a\nApplication: app-7\nDeployment ID: dep-42\nFailed in: verifying\n\n"
        f"Open in Berth: {LINK}\n\n-- \nBerth notification (evt.deployment.failed, 2025-03-01T12:30:05+00:00)\n"
    )
    assert mail.email_html(n) == (
        "<!DOCTYPE html>\n"
        '<html><body style="font-family:sans-serif;color:#1d1c1d">\n'
        '<h2 style="color:#d93f0b;margin:0 0 8px">Deployment failed</h2>\n'
        "<p>Deployment dep-42 of application app-7 failed</p>\n"
        '<p><strong>Reason:</strong> <span style="white-space:pre-wrap">health check &lt;failed&gt; &amp; '
        "*stopped*</span></p>\n"
        '<table cellpadding="4" style="border-collapse:collapse">\n'
        '<tr><th align="left">Team</th><td>team-a</td></tr>\n'
        '<tr><th align="left">Application</th><td>app-7</td></tr>\n'
        '<tr><th align="left">Deployment ID</th><td>dep-42</td></tr>\n'
        '<tr><th align="left">Failed in</th><td>verifying</td></tr>\n'
        "</table>\n"
        f'<p><a href="{LINK}">Open in Berth</a></p>\n'
        '<p style="color:#616061;font-size:12px">evt.deployment.failed &middot; 2025-03-01T12:30:05+00:00</p>\n'
        "</body></html>\n"
    )
    msg = mail.email_message(n, "berth@a.test", ["x@a.test", "y@a.test"])
    assert (msg["Subject"], msg["From"], msg["To"]) == (mail.email_subject(n), "berth@a.test", "x@a.test, y@a.test")
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]


def test_a_subject_cannot_carry_a_header_injection():
    n = failed().model_copy(update={"application": "web\r\nBcc: everyone@evil.test"})
    assert mail.email_subject(n) == "[Berth] Deployment failed: web Bcc: everyone@evil.test"


def test_webhook_body_and_signature():
    n = failed()
    body = mail.webhook_body(n, "dlv-1", attempt=2)
    assert json.loads(body) == {
        "id": "e1",
        "delivery_id": "dlv-1",
        "attempt": 2,
        "type": "evt.deployment.failed",
        "time": "2025-03-01T12:30:05+00:00",
        "severity": "error",
        "title": "Deployment failed",
        "summary": "Deployment dep-42 of application app-7 failed",
        "reason": "health check <failed> & *stopped*",
        "url": LINK,
        "team_id": "team-a",
        "project_id": None,
        "application_id": "app-7",
        "deployment_id": "dep-42",
        "count": 1,
        "first_time": "2025-03-01T12:30:05+00:00",
        "last_time": "2025-03-01T12:30:05+00:00",
        "test": False,
        "data": {"deployment_id": "dep-42", "failed_in": "verifying"},
    }
    assert body == json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    # Known-answer HMAC-SHA256 (RFC 4231 style check through the same construction).
    assert mail.sign("key", 1700000000, b"{}") == (
        "sha256=" + __import__("hmac").new(b"key", b"1700000000.{}", "sha256").hexdigest()
    )
    headers = mail.webhook_headers("s3cret-signing-key", 1700000000, body, n, "dlv-1")
    assert headers["X-Berth-Timestamp"] == "1700000000"
    assert mail.verify("s3cret-signing-key", "1700000000", headers["X-Berth-Signature"], body, now=1700000100)
    assert not mail.verify("s3cret-signing-key", "1700000000", headers["X-Berth-Signature"], body, now=1700000400)
    assert not mail.verify("other-key", "1700000000", headers["X-Berth-Signature"], body, now=1700000000)
    assert not mail.verify("s3cret-signing-key", "1700000000", headers["X-Berth-Signature"], body + b" ", 1700000000)


def test_huge_and_hostile_text_stays_inside_every_limit():
    hostile = ("<b>&amp;</b> @everyone *_~`| \U0001f600 " * 400)[:20000]
    data = {
        "deployment_id": "d" * 64,
        "application_id": "a" * 64,
        "team_id": "t" * 64,
        "reason": hostile,
        **{f"field_{i}": hostile for i in range(30)},
    }
    n = render("evt.deployment.failed", data, event_id="e", time=T, public_url="https://b.example")
    n = n.model_copy(update={"count": 12345, "first_time": T, "last_time": T + timedelta(minutes=3)})
    assert slack_problems(chat.slack(n)) == []
    assert discord_problems(chat.discord(n)) == []
    assert telegram_problems(chat.telegram(n, "42")) == []
    assert "@everyone" in json.dumps(chat.discord(n))  # shown, but mentions are disabled:
    assert chat.discord(n)["allowed_mentions"] == {"parse": []}
    assert chat.slack(n)["blocks"][0]["text"]["text"] == "Deployment failed (12345 times in 3 min)"


def test_receivers_refuse_what_the_real_apis_refuse():
    good = chat.slack(failed())
    assert slack_problems({**good, "blocks": good["blocks"] * 11}) != []  # 55 blocks
    long_header = {"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}
    assert slack_problems({"text": "t", "blocks": [long_header]}) != []
    assert slack_problems({"blocks": []}) == ["no_text"]
    d = chat.discord(failed())
    assert discord_problems({**d, "embeds": [{**d["embeds"][0], "color": -1}]}) != []
    assert discord_problems({**d, "embeds": [{**d["embeds"][0], "title": "x" * 257}]}) != []
    assert telegram_problems({"chat_id": 1, "text": "<b>open", "parse_mode": "HTML"}) != []
    assert telegram_problems({"chat_id": 1, "text": "a < b", "parse_mode": "HTML"}) != []
    assert telegram_problems({"chat_id": 1, "text": "<div>x</div>", "parse_mode": "HTML"}) != []
    assert telegram_problems({"chat_id": 1, "text": "x" * 4097}) != []


def test_grouped_and_other_events_read_well():
    crash = render(
        "evt.container.crashed",
        {
            "container_id": "f" * 64,
            "container_name": "berth-web-1",
            "application_id": "app-7",
            "team_id": "t",
            "exit_code": 1,
            "reason": "",
            "server": "vm1",
            "image": "web:3",
        },
        event_id="c1",
        time=T,
        public_url="https://b.example",
    )
    crash = crash.model_copy(update={"count": 50, "last_time": T + timedelta(seconds=47)})
    assert crash.headline() == "Container crashed (50 times in 47 s)"
    assert crash.summary == "Container berth-web-1 of application app-7 exited with code 1"
    assert crash.reason == "the process exited with code 1"
    assert list(crash.facts) == ["container_name", "image", "exit_code", "server", "container_id"]
    alert = render(
        "evt.alert.raised",
        {
            "alert_id": "al1",
            "rule_id": "r1",
            "rule_name": "web CPU",
            "team_id": "t",
            "target_kind": "app",
            "target_id": "app-7",
            "target": "app web",
            "metric": "cpu_pct",
            "threshold": 80.0,
            "value": 93.5,
            "for_s": 120.0,
            "labels": {"app": "app-7"},
        },
        event_id="a1",
        time=T,
        public_url="https://b.example",
    )
    assert alert.summary == "web CPU: CPU of app web at 93.5% is above 80% for 2 min"
    assert alert.url == "https://b.example/applications/app-7"
    assert (alert.severity, alert.application) == ("warning", "app-7")
    other = render(
        "evt.server.disk_full",
        {"server_id": "vm 1", "team_id": "t", "api_token": "x"},
        event_id="s1",
        time=T,
        public_url="https://b.example",
    )
    assert (other.title, other.severity, other.url) == ("Server disk full", "info", "https://b.example/servers/vm%201")
    assert "api_token" not in other.facts


def test_server_and_certificate_events_read_well():
    """The catalogue's own models, dumped as the bus carries them, rendered."""
    from berth_common.catalogue import CertificateExpiring, ServerBack, ServerUnreachable

    since = T - timedelta(minutes=3)
    common = {"server": "vm1", "outage_id": "o1", "team_ids": ["t"], "down_since": since, "last_seen_at": since}
    down = ServerUnreachable(**common, failed_checks=3, reason="the engine did not answer", error="refused")
    back = ServerBack(**common, failed_checks=9, back_at=T, down_for_s=180.0, reason="it answers again")
    cert = CertificateExpiring(domain="shop.example.com", expires_at=T + timedelta(days=2), days_left=2.0, team_id="t")

    def notice(model, context=None):
        data = model.model_dump(mode="json")
        return render(model.TYPE, data, event_id="x", time=T, public_url="https://b.example", context=context)

    n = notice(down, {"team_id": "t"})
    assert (n.title, n.severity, n.team_id) == ("Server unreachable", "error", "t")
    assert n.summary == "Server vm1 is unreachable: its Docker engine does not answer (3 checks in a row)"
    assert n.reason == "the engine did not answer" and n.facts == {"server": "vm1", "failed_checks": 3}
    n = notice(back, {"team_id": "t"})
    assert (n.title, n.severity, n.summary) == (
        "Server reachable again",
        "success",
        "Server vm1 answers again after 3 min",
    )
    n = notice(cert)
    assert (n.title, n.severity) == ("Certificate expiring", "warning")
    assert n.summary == "The certificate of shop.example.com expires in 2 days"
    assert chat.slack(n)["blocks"][0]["text"]["text"] == "Certificate expiring"
