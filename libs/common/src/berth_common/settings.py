"""Settings shared by every service: one pydantic-settings class per service on this base.

All variables carry the ``BERTH_`` prefix. In production mode a service refuses to start while a secret
still has its development default.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from berth_common.background import BackgroundLimits
from berth_common.outbound import OutboundPolicy, parse_allowance, split_setting

DEV_SECRET = "dev-insecure-secret-change-me"
DEV_DB_PASSWORD = "berth-dev"


def checked(setting: str, parse: Callable[[list[str]], object], value: list[str]) -> list[str]:
    """``value`` as given, once ``parse`` takes it; its refusal names the setting."""
    try:
        parse(value)
    except ValueError as exc:
        raise ValueError(f"{setting}: {exc}") from None
    return value


def checked_teams(
    setting: str, parse: Callable[[list[str]], object], value: dict[str, list[str]]
) -> dict[str, list[str]]:
    """Each team's entries of a per-team ``setting`` checked as :func:`checked` does; a refusal names the team."""
    for team, entries in value.items():
        checked(f"{setting}: {team}", parse, entries)
    return value


class DefaultSecretError(ValueError):
    """A production service was configured with a development default secret."""


class BaseServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BERTH_", extra="ignore", env_file=None)

    service_name: str = "berth"
    env: Literal["development", "production", "test"] = "development"
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    data_dir: Path = Path(".berth")

    # One server, or the nodes of a NATS cluster separated by commas (the client fails over between them).
    nats_url: str = "nats://127.0.0.1:4222"
    # Copies of each JetStream stream: 1 on a single server, 3 on a three-node cluster (docs/operations.md).
    nats_replicas: int = Field(default=1, ge=1, le=5)
    # The service's bus identity (``berth_common.bus.permissions``); empty: connect without credentials.
    nats_user: str = ""
    nats_password: SecretStr = SecretStr("")
    database_url: SecretStr = SecretStr(f"postgresql+asyncpg://berth:{DEV_DB_PASSWORD}@127.0.0.1:5432/berth")
    db_schema: str = ""
    # Connections kept open while idle, and how many more a burst may open (closed when returned).
    db_pool_size: int = Field(default=1, ge=0, le=100)
    db_max_overflow: int = Field(default=10, ge=0, le=1000)
    # Run migrations in a child process so alembic never stays resident in the service (about 12 MB).
    migrate_in_subprocess: bool = True

    secret_key: SecretStr = SecretStr(DEV_SECRET)
    otlp_endpoint: str | None = None

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=0, ge=0, le=65535)
    # BERTH_METRICS_TOKEN, the platform's scrape token: every service's /metrics answers only its bearer (the
    # metrics service's also a team's token derived from it; ``berth_common.scrape``); empty: no one
    metrics_token: SecretStr = SecretStr("")

    # Bus behaviour
    max_deliver: int = Field(default=5, ge=1)
    ack_wait_s: float = Field(default=30.0, gt=0)
    # How long one pull waits for messages: a stopping service sits out at most this much of it, and an idle
    # consumer asks once per wait.
    fetch_wait_s: float = Field(default=1.0, gt=0, le=30)
    nak_backoff_s: list[float] = [0.5, 2.0, 5.0, 15.0]
    rpc_timeout_s: float = Field(default=5.0, gt=0)
    event_retention_days: float = Field(default=7.0, gt=0)
    log_retention_hours: float = Field(default=24.0, gt=0)
    # Builds, volume backups/restores and restore drills: CPU shares (an application has 1024), block I/O
    # weight (an application has 500; 0 leaves it unset) and memory limit in MB (0: none)
    # (``berth_common.background``)
    background_cpu_shares: int = Field(default=256, ge=2, le=262144)
    background_blkio_weight: int = Field(default=100, ge=0, le=1000)
    background_memory_mb: int = Field(default=2048, ge=0)

    @property
    def background_limits(self) -> BackgroundLimits:
        return BackgroundLimits(self.background_cpu_shares, self.background_blkio_weight, self.background_memory_mb)

    # Outbound requests on a team's behalf (webhooks, git, registries, S3, forges; berth_common.outbound):
    # CIDRs and host names allowed whatever their category (comma-separated), and whether RFC 1918 and
    # unique-local addresses are allowed (yes by default: users' own servers live on private networks).
    # BERTH_OUTBOUND_ALLOW_TEAMS (JSON): more allowances for some teams, ``{"<team id>": ["10.9.0.0/16", ...]}``.
    # An operator's setting, like BERTH_BIND_MOUNT_ALLOW_TEAMS: a team's own admin cannot lift the rule.
    outbound_allow: str = Field(default="", max_length=4096)
    outbound_private: bool = True
    outbound_allow_teams: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("outbound_allow")
    @classmethod
    def _check_outbound_allow(cls, value: str) -> str:
        checked("BERTH_OUTBOUND_ALLOW", parse_allowance, split_setting(value))
        return value

    @field_validator("outbound_allow_teams")
    @classmethod
    def _check_outbound_allow_teams(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return checked_teams("BERTH_OUTBOUND_ALLOW_TEAMS", parse_allowance, value)

    @property
    def outbound_policy(self) -> OutboundPolicy:
        """The platform's outbound policy, for targets no team chose (see :meth:`outbound_policy_for`)."""
        return OutboundPolicy.from_entries(split_setting(self.outbound_allow), allow_private=self.outbound_private)

    def outbound_entries_for(self, team_id: str | None) -> list[str]:
        """The allowance entries of one team (the platform's and the team's), as a message carries them."""
        return split_setting(self.outbound_allow) + list(self.outbound_allow_teams.get(team_id or "", []))

    def outbound_policy_for(self, team_id: str | None) -> OutboundPolicy:
        """The outbound policy of one team's targets: the platform's, widened by the team's allowance."""
        policy = self.outbound_policy
        extra = self.outbound_allow_teams.get(team_id or "")
        return policy.with_allowance(extra) if extra else policy

    @property
    def schema_name(self) -> str:
        return self.db_schema or self.service_name.replace("-", "_")

    @model_validator(mode="after")
    def _per_service_overrides(self) -> BaseServiceSettings:
        """``BERTH_<SCHEMA>_DATABASE_URL`` / ``BERTH_<SCHEMA>_HTTP_PORT`` / ``BERTH_<SCHEMA>_NATS_USER`` /
        ``BERTH_<SCHEMA>_NATS_PASSWORD`` win over the shared variables.

        This lets one environment (the all-in-one process) carry a role, a port and a bus identity per service.
        """
        prefix = f"BERTH_{self.schema_name.upper()}_"
        if url := os.environ.get(prefix + "DATABASE_URL"):
            self.database_url = SecretStr(url)
        if port := os.environ.get(prefix + "HTTP_PORT"):
            self.http_port = int(port)
        if user := os.environ.get(prefix + "NATS_USER"):
            self.nats_user = user
        if password := os.environ.get(prefix + "NATS_PASSWORD"):
            self.nats_password = SecretStr(password)
        return self

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> BaseServiceSettings:
        if self.env != "production":
            return self
        bad = []
        if self.secret_key.get_secret_value() == DEV_SECRET:
            bad.append("BERTH_SECRET_KEY")
        if DEV_DB_PASSWORD in self.database_url.get_secret_value():
            bad.append("BERTH_DATABASE_URL")
        if bad:
            raise DefaultSecretError(
                f"refusing to start in production with development default secrets: {', '.join(bad)}"
            )
        return self

    @property
    def json_logs(self) -> bool:
        if self.log_format == "auto":
            return self.env == "production"
        return self.log_format == "json"
