"""Pure parts: subscription patterns, grouping, backoff, the rate bucket, target validation, secrets at rest."""

from __future__ import annotations

import stat
from datetime import UTC, datetime

import pytest

from berth_common.catalogue import DiscordTarget, EmailTarget, SlackTarget, WebhookTarget
from berth_common.outbound import OutboundPolicy
from berth_notifier.adapters.secretbox import SecretBox, SecretUnavailableError, from_settings
from berth_notifier.adapters.senders import redact
from berth_notifier.domain import channels
from berth_notifier.domain.policy import (
    PatternError,
    TokenBucket,
    backoff,
    check_pattern,
    group_key,
    matches,
    retry_after,
    worth_notifying,
)


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("evt.deployment.failed", "evt.deployment.failed", True),
        ("evt.deployment.failed", "evt.deployment.succeeded", False),
        ("evt.deployment.*", "evt.deployment.failed", True),
        ("evt.deployment.*", "evt.deployment.progressed", False),  # chatty: only by exact name
        ("evt.deployment.progressed", "evt.deployment.progressed", True),
        ("evt.>", "evt.container.crashed", True),
        ("evt.*.failed", "evt.build.failed", True),
        ("evt.*.failed", "evt.build.succeeded", False),
        ("evt.container.>", "evt.container", False),
        ("evt.container.*", "evt.container.crashed.extra", False),
    ],
)
def test_subscription_patterns(pattern, event_type, expected):
    assert matches(check_pattern(pattern), event_type) is expected


@pytest.mark.parametrize(
    "bad",
    [
        "deployment.failed",
        "evt",
        "evt.log.line",
        "evt.deployment.>.x",
        "evt.Dep.x",
        "evt.deployment.fa iled",
        "evt." + "x" * 130,
    ],
)
def test_bad_patterns_are_refused(bad):
    with pytest.raises(PatternError):
        check_pattern(bad)


def test_grouping_keys_bursty_container_events_by_application():
    a, grouped = group_key("evt.container.crashed", {"application_id": "app", "container_id": "c1"}, "e1")
    b, _ = group_key("evt.container.crashed", {"application_id": "app", "container_id": "c2"}, "e2")
    c, single = group_key("evt.deployment.failed", {"application_id": "app"}, "e3")
    assert (a == b, grouped, single, c) == (True, True, False, "evt.deployment.failed:e3")
    assert len(group_key("evt.container.crashed", {"container_id": "x" * 500}, "e")[0]) <= 200
    assert not worth_notifying("evt.container.restarted", {"looping": False})
    assert worth_notifying("evt.container.restarted", {"looping": True})
    # a backup schedule's miss is told by evt.backup.missed, once
    assert not worth_notifying("evt.schedule.missed", {"command_type": "cmd.backup.start"})
    assert worth_notifying("evt.schedule.missed", {"command_type": "cmd.other.start"})
    assert worth_notifying("evt.backup.missed", {"schedule_id": "nightly"})


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter():
    assert [backoff(n, 2.0, 60.0) for n in range(1, 8)] == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert backoff(1, 2.0, 60.0, jitter=0.999) == pytest.approx(2.1998)


def test_retry_after_header():
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert retry_after("7", now, 600) == 7.0
    assert retry_after("Wed, 01 Jan 2025 00:00:30 GMT", now, 600) == 30.0
    assert retry_after("99999", now, 600) == 600
    assert retry_after("soon", now, 600) is None and retry_after(None, now, 600) is None


def test_token_bucket_allows_a_burst_then_the_rate():
    bucket = TokenBucket(burst=3, rate_per_s=1.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.wait_time(100.0) == pytest.approx(1.0)
    assert bucket.take(100.5) == pytest.approx(0.5)  # nothing taken
    assert bucket.take(101.0) == 0.0
    assert bucket.wait_time(200.0) == 0.0 and bucket.tokens == 3.0


def test_split_merge_and_hint_keep_secrets_apart():
    kind, settings, secrets = channels.split(
        WebhookTarget(url="https://h.example:8443/in?k=v", signing_secret="s" * 20)
    )
    assert (kind, settings, secrets) == (
        "webhook",
        {},
        {"url": "https://h.example:8443/in?k=v", "signing_secret": "s" * 20},
    )
    assert channels.hint(kind, settings, secrets) == "https://h.example:8443"
    email = EmailTarget(host="smtp.example", username="u", from_addr="a@example.test", to_addrs=["b@example.test"])
    kind, settings, secrets = channels.split(email)
    assert secrets == {} and settings["username"] == "u" and "password" not in settings
    _, merged = channels.merge("email", settings, {"password": "old"}, email)
    assert merged == {"password": "old"}  # omitted secret kept
    with pytest.raises(channels.FieldError) as err:
        channels.merge("email", settings, {}, SlackTarget(webhook_url="https://x.example"))
    assert err.value.field == "target.kind"


@pytest.mark.parametrize(
    ("target", "field"),
    [
        (SlackTarget(webhook_url="https://hooks.example/services/a b"), "target.webhook_url"),
        (SlackTarget(webhook_url="javascript:alert(1)"), "target.webhook_url"),
        (SlackTarget(webhook_url="https://hooks.example:0/x"), "target.webhook_url"),
        (DiscordTarget(webhook_url="https://discord.example/api/webhooks/abc/tok"), "target.webhook_url"),
        (WebhookTarget(url="https://h.example/x#frag", signing_secret="s" * 16), "target.url"),
        (EmailTarget(host="smtp ex", from_addr="a@b.example", to_addrs=["c@d.example"]), "target.host"),
        (EmailTarget(host="smtp.example", from_addr="not-an-address", to_addrs=["c@d.example"]), "target.from_addr"),
        (
            EmailTarget(host="smtp.example", password="pw", from_addr="a@b.example", to_addrs=["c@d.example"]),
            "target.username",
        ),
    ],
)
def test_invalid_targets_name_the_field(target, field):
    kind, settings, secrets = channels.split(target)
    with pytest.raises(channels.FieldError) as err:
        channels.validate(kind, settings, secrets, OutboundPolicy())
    assert err.value.field == field
    for value in secrets.values():
        assert value not in str(err.value)


@pytest.mark.parametrize(
    ("target", "field", "detail"),
    [
        (
            SlackTarget(webhook_url="http://169.254.169.254/latest/meta-data/"),
            "target.webhook_url",
            "names a host the outbound rule refuses (metadata; an admin can allow it)",
        ),
        (
            WebhookTarget(url="http://2130706433:8080/in", signing_secret="s" * 16),
            "target.url",
            "names a host the outbound rule refuses (loopback; an admin can allow it)",
        ),
        (
            WebhookTarget(url="http://[::ffff:127.0.0.1]/in", signing_secret="s" * 16),
            "target.url",
            "names a host the outbound rule refuses (loopback; an admin can allow it)",
        ),
        (
            EmailTarget(host="0.0.0.0", from_addr="a@b.example", to_addrs=["c@d.example"]),
            "target.host",
            "names a host the outbound rule refuses (unspecified; an admin can allow it)",
        ),
        (
            EmailTarget(host="metadata.google.internal", from_addr="a@b.example", to_addrs=["c@d.example"]),
            "target.host",
            "names a host the outbound rule refuses (metadata; an admin can allow it)",
        ),
    ],
)
def test_a_target_the_outbound_rule_refuses_names_the_field_and_the_rule(target, field, detail):
    kind, settings, secrets = channels.split(target)
    with pytest.raises(channels.FieldError) as err:
        channels.validate(kind, settings, secrets, OutboundPolicy())
    assert (err.value.field, err.value.detail) == (field, detail)
    channels.validate(kind, settings, secrets, OutboundPolicy().with_allowance(["0.0.0.0/0", "::/0", *METADATA]))


METADATA = ["metadata.google.internal"]


def test_plain_smtp_with_a_password_only_to_a_local_relay():
    local = EmailTarget(
        host="127.0.0.1",
        security="plain",
        username="u",
        password="pw",
        from_addr="a@b.example",
        to_addrs=["c@d.example"],
    )
    channels.validate(*channels.split(local), OutboundPolicy.from_entries(["127.0.0.1"]))


def test_secret_box_seals_per_row_and_rotates(tmp_path):
    box = SecretBox([b"current-key-material"])
    blob = box.encrypt({"webhook_url": "https://hooks.example/T/B/secret"}, "team-a:ch1")
    assert b"secret" not in blob and blob[:1] == b"\x01"
    assert box.decrypt(blob, "team-a:ch1") == {"webhook_url": "https://hooks.example/T/B/secret"}
    assert box.encrypt({"a": "b"}, "x") != box.encrypt({"a": "b"}, "x")  # fresh nonce every time
    with pytest.raises(SecretUnavailableError):
        box.decrypt(blob, "team-b:ch1")  # moved to another team's row
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(SecretUnavailableError):
        box.decrypt(tampered, "team-a:ch1")
    rotated_box = SecretBox([b"new-key-material", b"current-key-material"])
    assert not rotated_box.is_current(blob)
    new_blob = rotated_box.rotate_blob(blob, "team-a:ch1")
    assert rotated_box.is_current(new_blob)
    with pytest.raises(SecretUnavailableError):
        SecretBox([b"new-key-material"]).decrypt(blob, "team-a:ch1")

    key_file = tmp_path / "keys" / "notifier.key"
    first = from_settings(key_file, "ignored", [])
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_bytes().strip()) == 64
    again = from_settings(key_file, "ignored", [])
    assert again.decrypt(first.encrypt({"k": "v"}, "a"), "a") == {"k": "v"}


def test_redaction_covers_the_pieces_of_a_secret_an_error_may_quote():
    url = "https://hooks.example/services/T0AAA/B0BBB/xoxbSecretTokenValue"
    token = "123456:AAbbCCddEEffGGhhIIjj"
    text = f"404 for /services/T0AAA/B0BBB/xoxbSecretTokenValue; token AAbbCCddEEffGGhhIIjj; url {url}"
    out = redact(text, [url, token])
    assert "xoxbSecretTokenValue" not in out and "AAbbCCddEEffGGhhIIjj" not in out and "T0AAA" not in out
    assert out.startswith("404 for ***")
