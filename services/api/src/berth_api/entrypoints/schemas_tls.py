"""Bodies of HTTPS: an application's TLS options, the certificates a team uploads (the key write-only),
and the certificate state of each host (the public contract, documented in the OpenAPI)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

from berth_api.domain import names
from berth_api.domain.certificates import MAX_CHAIN_PEM_CHARS, MAX_KEY_PEM_CHARS
from berth_api.entrypoints.schemas import ID_PATTERN, Flag
from berth_common.catalogue import HSTS_MAX_AGE_S
from berth_common.values import DNS_LABEL_PATTERN

Host = Annotated[str, Field(min_length=1, max_length=names.MAX_HOST), AfterValidator(names.domain_host)]
ACME = (
    "Certificates for the application's hosts from the platform's ACME server (Let's Encrypt or the one "
    "configured); null: the platform's default, on for an application with a custom domain when the platform "
    "has ACME enabled (BERTH_ACME_ENABLED). A host covered by an uploaded certificate is served with that one"
)
CHALLENGE = "How the ACME server checks a host: http-01 (default), tls-alpn-01, or dns-01 (wildcard hosts; needs the "
CHALLENGE += "platform's DNS provider)"
REDIRECT = "HTTP to HTTPS: auto (once the host has a certificate), always, or never"
WWW = "none, to_www (example.com -> www.example.com) or to_apex (the reverse); both must be hosts of the application"
Challenge = Literal["http-01", "tls-alpn-01", "dns-01"]
Redirect = Literal["auto", "always", "never"]
Www = Literal["none", "to_www", "to_apex"]


class TlsIn(BaseModel):
    """How the application's hosts are served over HTTPS. Given as a whole: it replaces the stored options."""

    model_config = ConfigDict(extra="forbid")

    acme: Flag | None = Field(default=None, description=ACME)
    challenge: Challenge = Field(default="http-01", description=CHALLENGE)
    redirect: Redirect = Field(default="auto", description=REDIRECT)
    www: Www = Field(default="none", description=WWW)
    hsts_max_age_s: int = Field(
        default=0, ge=0, le=HSTS_MAX_AGE_S, description="Strict-Transport-Security max-age; 0 sends no HSTS header"
    )
    hsts_subdomains: Flag = Field(default=False, description="HSTS includeSubDomains")
    hsts_preload: Flag = Field(default=False, description="HSTS preload (needs a max age of a year and subdomains)")


class TlsOut(BaseModel):
    acme: Flag | None = Field(default=None, description=ACME)
    challenge: Challenge = "http-01"
    redirect: Redirect = "auto"
    www: Www = "none"
    hsts_max_age_s: int = 0
    hsts_subdomains: Flag = False
    hsts_preload: Flag = False


PEM_RULES = (
    "Checked at upload: the key matches the certificate, the chain is in order (leaf, then each issuer), "
    "every host is among the certificate's names (a wildcard covers one label), it is valid now; keys: RSA "
    "2048-8192 bits, EC P-256/P-384/P-521 or Ed25519, without a passphrase"
)


class CertificateCreate(BaseModel):
    """A certificate to serve some hosts with. The key is write-only: sealed at rest, never shown again."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str,
        Field(min_length=1, max_length=63, examples=["shop-2027"], json_schema_extra={"pattern": DNS_LABEL_PATTERN}),
        AfterValidator(names.resource_name),
    ]
    certificate: str = Field(
        min_length=1, max_length=MAX_CHAIN_PEM_CHARS, description="The PEM certificate (the leaf; a full chain too)"
    )
    chain: str = Field(
        default="", max_length=MAX_CHAIN_PEM_CHARS, description="The PEM intermediates, the leaf's issuer first"
    )
    key: SecretStr = Field(min_length=1, max_length=MAX_KEY_PEM_CHARS, description="The PEM private key")
    hosts: list[Host] = Field(
        default_factory=list,
        max_length=100,
        description="The hosts it serves; with application_id, default: the application's hosts it covers",
    )
    application_id: str | None = Field(
        default=None, pattern=ID_PATTERN, description="One application's certificate (preferred over the team's)"
    )


class CertificateOut(BaseModel):
    id: str
    name: str
    application_id: str | None = Field(description="null: the team's, for any of its applications with these hosts")
    hosts: list[str] = Field(description="The hosts it is served for")
    names: list[str] = Field(description="The DNS names of the certificate")
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    key_type: str = Field(description="rsa-<bits>, ec-<curve> or ed25519 (the key itself is never shown)")
    created_at: datetime


CertificateStatus = Literal["pending", "issued", "failed", "expiring", "expired"]
STATUS = (
    "pending: nothing reported yet; issued: served with a valid certificate; failed: the last attempt failed "
    "(last_error); expiring: near its end and not renewed yet; expired: past not_after"
)


class CertificateError(BaseModel):
    stage: str = Field(description="dns (the host does not resolve to its server), acme, or custom")
    reason: str
    at: datetime


class CertificateExpiringOut(BaseModel):
    days_left: float
    reason: str
    at: datetime


class CertificateStateOut(BaseModel):
    host: str
    server_id: str | None = Field(description="The server whose Traefik serves it (null: nothing reported yet)")
    status: CertificateStatus = Field(description=STATUS)
    source: Literal["acme", "custom"] | None
    issuer: str | None
    not_before: datetime | None
    not_after: datetime | None
    domains: list[str]
    fingerprint_sha256: str | None
    last_error: CertificateError | None
    expiring: CertificateExpiringOut | None
    updated_at: datetime | None
