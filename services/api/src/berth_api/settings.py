"""Settings of the api service (``BERTH_`` variables on the shared base)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator

from berth_api.domain import forwarded, retention
from berth_api.domain.compose.keys import DANGEROUS
from berth_api.domain.compose.published_ports import parse_ranges
from berth_api.domain.names import LABEL_RE
from berth_common.catalogue import RUNTIME_PATTERN, mount_path
from berth_common.images import parse_image_map
from berth_common.settings import BaseServiceSettings, checked, checked_teams


class ApiSettings(BaseServiceSettings):
    @field_validator("image_map")
    @classmethod
    def _valid_image_map(cls, value: str) -> str:
        parse_image_map(value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_trusted_proxies(cls, value: list[str]) -> list[str]:
        forwarded.networks(value)
        return value

    service_name: str = "api"
    db_schema: str = "api"
    http_port: int = 8420

    # First start: the bootstrap admin and its token (written to ``admin_token_path``, mode 0600).
    admin_email: str = Field(default="admin@localhost", min_length=3, max_length=254)
    admin_token_file: Path | None = None  # BERTH_ADMIN_TOKEN_FILE; default <data_dir>/admin.token

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)  # BERTH_MAX_BODY_BYTES
    status_timeout_s: float = Field(default=2.0, gt=0)  # per-service health query in GET /v1/status
    # In-flight requests may finish within this on stop (the runtime waits at most 30 s for the http task).
    shutdown_grace_s: int = Field(default=25, ge=1, le=29)
    token_touch_interval_s: float = Field(default=60.0, ge=0)  # last_used_at is written at most this often
    # Connections of the requests that write (and the outbox, webhooks and sweeps) kept open (BERTH_DB_POOL_SIZE):
    # with one, every request of a burst but one opened a connection of its own (a SCRAM key derivation on both
    # sides and a new Postgres backend: 10-15 ms of CPU) and closed it again. Four stay open (a few MB of
    # Postgres memory), as many as the read pool's.
    db_pool_size: int = Field(default=4, ge=0, le=100)
    # asyncpg connections for the statements of the request path (the token check, a list page); opened on
    # demand, closed after a minute unused (BERTH_READ_POOL_SIZE)
    read_pool_size: int = Field(default=4, ge=1, le=64)
    # The api process's event loop on uvloop when it is installed (BERTH_UVLOOP=false: asyncio's own)
    uvloop: bool = True
    # Serialised pages of GET /v1/applications kept per process, by team revision (BERTH_LIST_CACHE_BYTES;
    # 0 disables the cache)
    list_cache_bytes: int = Field(default=16 * 1024 * 1024, ge=0)

    # Brute force: failed authentications (and invitation codes) per source address and per token prefix
    # within a sliding window, counted in memory per process; over the limit -> 429 with Retry-After.
    # 0 disables a limit (BERTH_AUTH_FAILURES_PER_ADDRESS, BERTH_AUTH_FAILURES_PER_PREFIX).
    auth_failures_per_address: int = Field(default=20, ge=0)
    auth_failures_per_prefix: int = Field(default=10, ge=0)
    auth_failure_window_s: float = Field(default=60.0, gt=0, le=86400)
    # Networks of the reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed
    # (BERTH_TRUSTED_PROXIES, a JSON list of CIDRs or addresses, e.g. ["10.0.0.0/8"]); empty: none is
    trusted_proxies: list[str] = Field(default_factory=list, max_length=64)
    invitation_ttl_s: int = Field(default=24 * 3600, ge=60, le=30 * 24 * 3600)  # single-use invitation codes
    # Audit rows older than this many days are deleted (BERTH_AUDIT_RETENTION_DAYS; 0 keeps them forever), by
    # a purge run this long after start (BERTH_AUDIT_PURGE_DELAY_S) and then every BERTH_AUDIT_PURGE_INTERVAL_S.
    audit_retention_days: int = retention.DEFAULT_DAYS
    audit_purge_delay_s: float = Field(default=30.0, ge=0, le=86400)
    audit_purge_interval_s: float = Field(default=3600.0, gt=0, le=7 * 86400)

    # Applications: generated hosts are <service>-<app>-<env>.<base_domain> (BERTH_BASE_DOMAIN)
    base_domain: str = Field(default="localhost", min_length=1, max_length=200)
    # file:// URLs and absolute paths as git repositories (BERTH_ALLOW_LOCAL_GIT, as the builder's): off
    allow_local_git: bool = False
    # The image map (BERTH_IMAGE_MAP, as the builder's and the scheduler's): a deployment carries the team's
    # credentials for the registry an image is pulled from once mapped (a mirror's host)
    image_map: str = ""
    # AES-GCM key of secret variables, created at first start with mode 0600; default <data_dir>/api-secrets.key
    secrets_key_file: Path | None = None  # BERTH_SECRETS_KEY_FILE
    replicas_timeout_s: float = Field(default=1.0, gt=0, le=10)  # rpc.scheduler.replicas in GET /applications/{id}
    # Host bind mounts of application services only under these absolute paths (BERTH_BIND_MOUNT_ALLOW, a
    # JSON list; empty: no bind mount is accepted)
    bind_mount_allow: list[str] = Field(default_factory=list, max_length=64)
    # Compose applications: the dangerous compose keys the administrator allows (BERTH_COMPOSE_ALLOW, a JSON
    # list of privileged, network_mode, devices, cap_add, pid, ipc, security_opt; empty: each is refused).
    compose_allow: list[str] = Field(default_factory=list, max_length=7)
    # What the platform's administrator allows one team beyond the lists above (BERTH_COMPOSE_ALLOW_TEAMS,
    # BERTH_BIND_MOUNT_ALLOW_TEAMS: JSON objects, team id -> list). Settings of the platform, not a team
    # admin's choice: a privileged container or a host path reaches the whole server, every team's data on it.
    compose_allow_teams: dict[str, list[str]] = Field(default_factory=dict, max_length=1000)
    bind_mount_allow_teams: dict[str, list[str]] = Field(default_factory=dict, max_length=1000)
    # Compose ``runtime:`` (the engine's OCI runtime, e.g. runsc, nvidia; Docker's runc always): the runtimes
    # every team may ask for (BERTH_COMPOSE_RUNTIMES, a JSON list) and those one team may
    # (BERTH_COMPOSE_RUNTIMES_TEAMS, team id -> list); none by default. The runtime must exist on the servers.
    compose_runtimes: list[Annotated[str, Field(pattern=RUNTIME_PATTERN)]] = Field(default_factory=list, max_length=16)
    compose_runtimes_teams: dict[str, list[Annotated[str, Field(pattern=RUNTIME_PATTERN)]]] = Field(
        default_factory=dict, max_length=1000
    )
    # Compose ports published on the servers (``domain/compose/published_ports.py``): the port ranges every
    # team may publish (BERTH_PUBLISHED_PORTS_ALLOW, a JSON list of "low-high" or one port) and those one team
    # may (BERTH_PUBLISHED_PORTS_ALLOW_TEAMS, team id -> list); a team in neither publishes none (the default).
    published_ports_allow: list[str] = Field(default_factory=list, max_length=64)
    published_ports_allow_teams: dict[str, list[str]] = Field(default_factory=dict, max_length=1000)
    # The parser's time and input caps.
    compose_timeout_s: float = Field(default=10.0, gt=0, le=120)
    compose_max_bytes: int = Field(default=256 * 1024, ge=1024, le=4 * 1024 * 1024)
    # How long the builder may take to read a compose file of the repository (clone included)
    compose_read_timeout_s: float = Field(default=60.0, gt=0, le=600)
    # How long the builder may take to tell the commit a git application's branch or tag names when a
    # deployment is requested (BERTH_REF_RESOLVE_TIMEOUT_S); past it the build resolves the ref itself
    ref_resolve_timeout_s: float = Field(default=10.0, gt=0, le=120)
    # HTTPS: whether the platform gets certificates from an ACME server (BERTH_ACME_ENABLED; off unless set):
    # then an application with a custom domain gets them unless its ``tls.acme`` says otherwise. The DNS
    # provider proxy-sync answers dns-01 challenges with (BERTH_ACME_DNS_PROVIDER; empty: none, so dns-01
    # and wildcard hosts are refused).
    acme_enabled: bool = False
    acme_dns_provider: str = Field(default="", max_length=64)
    volumes_timeout_s: float = Field(default=10.0, gt=0, le=60)  # rpc.scheduler.volumes (each engine's disk usage)
    # Logs as Server-Sent Events: a comment this often keeps proxies from closing an idle stream; the
    # deployment's state is checked this often to end the stream when it finishes.
    sse_keepalive_s: float = Field(default=15.0, gt=0)
    sse_state_poll_s: float = Field(default=0.5, gt=0)
    # Git forge webhooks (docs/webhooks.md): the URL forges reach the api at (BERTH_WEBHOOK_BASE_URL; empty:
    # the address the request that shows it came to), a delivery's body cap (at most BERTH_MAX_BODY_BYTES
    # applies), the debounce (a push waits this long for a newer one, at most the max after the burst's
    # first) and how long a delivery id is remembered to refuse its replay.
    webhook_base_url: str = Field(default="", max_length=500, pattern=r"^(https?://[^\s/?#]+(/[^\s?#]*)?)?$")
    webhook_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    webhook_debounce_s: float = Field(default=3.0, ge=0, le=600)
    webhook_debounce_max_s: float = Field(default=30.0, ge=0, le=3600)
    webhook_delivery_retention_days: int = Field(default=90, ge=1, le=3650)
    # While commit statuses or previews are owed to a forge: how often the deployments they follow are looked at.
    webhook_status_poll_s: float = Field(default=1.0, gt=0, le=60)
    # unverified deliveries: after this many within the window, further unverified ones are answered 429
    webhook_failures_per_webhook: int = Field(default=10, ge=0)
    webhook_failures_per_address: int = Field(default=30, ge=0)
    webhook_failure_window_s: float = Field(default=300.0, gt=0, le=86400)

    @field_validator("base_domain")
    @classmethod
    def _valid_base_domain(cls, value: str) -> str:
        value = value.lower().removesuffix(".")
        for label in value.split("."):
            if not LABEL_RE.fullmatch(label):
                raise ValueError(f"BERTH_BASE_DOMAIN: invalid DNS label {label!r}")
        return value

    @field_validator("bind_mount_allow")
    @classmethod
    def _valid_bind_roots(cls, value: list[str]) -> list[str]:
        for path in value:
            try:
                mount_path(path)
            except ValueError as exc:
                raise ValueError(f"BERTH_BIND_MOUNT_ALLOW: {path!r}: {exc}") from None
        return value

    @field_validator("compose_allow")
    @classmethod
    def _valid_compose_allow(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(DANGEROUS))
        if unknown:
            raise ValueError(f"BERTH_COMPOSE_ALLOW: not a dangerous compose key: {', '.join(unknown)}")
        return value

    @field_validator("compose_allow_teams")
    @classmethod
    def _valid_compose_allow_teams(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for team, keys in value.items():
            unknown = sorted(set(keys) - set(DANGEROUS))
            if unknown:
                raise ValueError(
                    f"BERTH_COMPOSE_ALLOW_TEAMS: {team}: not a dangerous compose key: {', '.join(unknown)}"
                )
        return value

    @field_validator("bind_mount_allow_teams")
    @classmethod
    def _valid_bind_roots_teams(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for team, paths in value.items():
            for path in paths:
                try:
                    mount_path(path)
                except ValueError as exc:
                    raise ValueError(f"BERTH_BIND_MOUNT_ALLOW_TEAMS: {team}: {path!r}: {exc}") from None
        return value

    @field_validator("published_ports_allow")
    @classmethod
    def _valid_published(cls, value: list[str]) -> list[str]:
        return checked("BERTH_PUBLISHED_PORTS_ALLOW", parse_ranges, value)

    @field_validator("published_ports_allow_teams")
    @classmethod
    def _valid_published_teams(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return checked_teams("BERTH_PUBLISHED_PORTS_ALLOW_TEAMS", parse_ranges, value)

    def published_ranges(self, team_id: str | None) -> tuple[tuple[int, int], ...] | None:
        """The port ranges a team may publish on the servers (the platform's and its own); None: none."""
        given = [*self.published_ports_allow, *self.published_ports_allow_teams.get(team_id or "", [])]
        return parse_ranges(given) if given else None

    @cached_property
    def proxy_networks(self) -> tuple[forwarded.Network, ...]:
        """The trusted proxies' networks, parsed once."""
        return forwarded.networks(self.trusted_proxies)

    def compose_allowed(self, team_id: str | None) -> frozenset[str]:
        """The dangerous compose keys a team may use: the platform's list and the team's own."""
        return frozenset(self.compose_allow) | frozenset(self.compose_allow_teams.get(team_id or "", []))

    def compose_runtimes_for(self, team_id: str | None) -> frozenset[str]:
        """The container runtimes a team may ask for: the platform's list and the team's own."""
        return frozenset(self.compose_runtimes) | frozenset(self.compose_runtimes_teams.get(team_id or "", []))

    def bind_roots(self, team_id: str | None) -> list[str]:
        """The host paths a team's bind mounts may be under: the platform's and the team's own."""
        return list(dict.fromkeys([*self.bind_mount_allow, *self.bind_mount_allow_teams.get(team_id or "", [])]))

    @field_validator("audit_retention_days", mode="before")
    @classmethod
    def _valid_audit_retention(cls, value: object) -> int:
        return retention.parse_days(value)

    @property
    def admin_token_path(self) -> Path:
        return self.admin_token_file or self.data_dir / "admin.token"

    @property
    def secrets_key_path(self) -> Path:
        return self.secrets_key_file or self.data_dir / "api-secrets.key"
