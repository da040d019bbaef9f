"""Settings of the notifier service (``BERTH_`` variables on the shared base)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr

from berth_common.outbound import OutboundPolicy
from berth_common.settings import BaseServiceSettings


class NotifierSettings(BaseServiceSettings):
    service_name: str = "notifier"
    db_schema: str = "notifier"
    http_port: int = 8425

    # Links in messages point here (BERTH_PUBLIC_URL): <public_url>/applications/<id>[/deployments/<id>].
    public_url: str = Field(default="http://127.0.0.1:8420", max_length=512)

    # Channel secrets: AES-256-GCM with a key derived (HKDF-SHA256) from this file's bytes, or, when
    # unset, from BERTH_SECRET_KEY. A missing key file is created with 32 random bytes, mode 0600.
    # Keys listed in ``notify_previous_secret_keys`` still decrypt; rows are re-encrypted at start.
    notify_key_file: Path | None = None
    notify_previous_secret_keys: list[SecretStr] = Field(default_factory=list)

    # Delivery: at-least-once, exponential backoff from ``backoff_base_s`` doubling to ``backoff_max_s``.
    notify_max_attempts: int = Field(default=8, ge=1, le=50)
    notify_backoff_base_s: float = Field(default=2.0, gt=0)
    notify_backoff_max_s: float = Field(default=600.0, gt=0)
    notify_timeout_s: float = Field(default=10.0, gt=0, le=120)  # whole request, connect included
    # Per channel: a token bucket of ``burst`` messages refilled at ``rate_per_minute``.
    notify_rate_per_minute: float = Field(default=20.0, gt=0)
    notify_burst: int = Field(default=5, ge=1)
    # Grouping of bursty events (container crashes, restarts, health changes): the first waits
    # ``group_wait_s`` for others like it; later ones wait until ``group_interval_s`` after the last send.
    notify_group_wait_s: float = Field(default=10.0, ge=0)
    notify_group_interval_s: float = Field(default=60.0, ge=0)
    # Targets on private addresses (RFC 1918, unique local); None: as BERTH_OUTBOUND_PRIVATE. Loopback,
    # link-local and metadata addresses follow the outbound rule (berth_common.outbound): refused unless
    # BERTH_OUTBOUND_ALLOW (or the team's allowance) names them.
    notify_allow_private_targets: bool | None = None
    notify_smtp_ca_file: Path | None = None  # extra CA bundle to verify SMTP servers (private CAs)
    notify_telegram_api_url: str = "https://api.telegram.org"
    notify_log_days: float = Field(default=14.0, gt=0)  # finished deliveries are kept this long
    notify_max_event_age_s: float = Field(default=6 * 3600.0, gt=0)  # older events are not notified
    notify_sweep_interval_s: float = Field(default=5.0, gt=0)

    def notify_policy(self, team_id: str | None) -> OutboundPolicy:
        """The outbound policy of a team's channels; the Telegram API's host is the platform's choice, so it
        is allowed."""
        policy = self.outbound_policy_for(team_id)
        if self.notify_allow_private_targets is not None:
            policy = replace(policy, allow_private=self.notify_allow_private_targets)
        host = urlsplit(self.notify_telegram_api_url).hostname
        return policy.with_allowance([host]) if host else policy
