"""HTTPS: an application's TLS options (carried in its spec and in the routes the scheduler asks for), the
certificates a team uploads, and the events proxy-sync sends about the certificate of each host.

Certificates come from an ACME server (Let's Encrypt by default; the directory URL is a platform setting)
through each server's Traefik, or from the team (``CustomCertificate``: PEM chain and key, the key sealed
on the wire like a secret variable). proxy-sync checks each host resolves to its server before a
certificate is asked for, watches the certificate each host is served with, and reports it:
``evt.certificate.issued`` when a host has a new certificate, ``evt.certificate.failed`` when it cannot get
one (with the reason), ``evt.certificate.expiring`` when one is near its end and not renewed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_serializer

from berth_common import sealing
from berth_common.catalogue.base import Event, Id, register
from berth_common.catalogue.spec_base import Spec
from berth_common.values import RouteHost

MAX_PEM_CHARS = 65_536
MAX_SEALED_KEY_CHARS = 16_384
HSTS_MAX_AGE_S = 63_072_000  # two years, the preload list's upper figure


class CustomCertificate(Spec):
    """A certificate the team uploaded for some of an application's hosts (validated by the api: the key
    matches, the chain is in order, the hosts are covered, it is not expired). ``key`` is sealed whenever
    serialised to JSON, bound to the certificate's id; proxy-sync opens it where it writes it for Traefik."""

    PURPOSE: ClassVar[str] = "certificate"

    certificate_id: Id
    hosts: list[RouteHost] = Field(min_length=1, max_length=100)  # the hosts it is served for
    chain_pem: str = Field(min_length=1, max_length=MAX_PEM_CHARS)  # leaf first, then intermediates
    key: SecretStr = Field(max_length=MAX_SEALED_KEY_CHARS)

    @property
    def aad(self) -> str:
        return f"berth/{self.PURPOSE}/{self.certificate_id}"

    def reveal(self) -> str:
        """The key's PEM text, at the point of use only (raises ``sealing.UnsealError`` if it does not open)."""
        raw = self.key.get_secret_value()
        return sealing.unseal(raw, self.aad) if sealing.is_sealed(raw) else raw

    @field_serializer("key", when_used="json")
    def _sealed_on_the_wire(self, value: SecretStr) -> str:
        raw = value.get_secret_value()
        return sealing.reseal(raw, self.aad) if sealing.is_sealed(raw) else sealing.seal(raw, self.aad)


class TlsOptions(Spec):
    """How an application's hosts are served over HTTPS.

    ``acme``: its hosts get certificates from the platform's ACME server (hosts covered by a custom
    certificate use that one instead). ``challenge``: how the ACME server checks the host (``dns-01``, for
    wildcard hosts, through the platform's DNS provider). ``redirect``: HTTP to HTTPS; ``auto`` redirects
    a host once it has a certificate. ``www``: one of the apex and ``www.`` names redirects to the other
    (both must be hosts of the application). ``hsts_max_age_s``: 0 sends no HSTS header.
    """

    acme: bool = False
    challenge: Literal["http-01", "tls-alpn-01", "dns-01"] = "http-01"
    redirect: Literal["auto", "always", "never"] = "auto"
    www: Literal["none", "to_www", "to_apex"] = "none"
    hsts_max_age_s: int = Field(default=0, ge=0, le=HSTS_MAX_AGE_S)
    hsts_subdomains: bool = False
    hsts_preload: bool = False
    certificates: list[CustomCertificate] = Field(default_factory=list, max_length=100)
    # which ``evt.certificates.changed`` set ``certificates`` (0: the deployment did); an older one is ignored
    certificates_revision: int = Field(default=0, ge=0, exclude_if=lambda v: v == 0)

    def enabled(self) -> bool:
        """Whether any host is served over HTTPS (a certificate from ACME or one uploaded)."""
        return self.acme or bool(self.certificates)

    def for_hosts(self, hosts: Iterable[str]) -> TlsOptions:
        """These options with only the certificates serving one of ``hosts``, each narrowed to them (what
        one route of the application carries)."""
        wanted = {h.lower() for h in hosts}
        certificates: list[CustomCertificate] = []
        for cert in self.certificates:
            mine = [h for h in cert.hosts if h.lower() in wanted]
            if mine:
                certificates.append(cert if mine == list(cert.hosts) else cert.model_copy(update={"hosts": mine}))
        return self.model_copy(update={"certificates": certificates})

    def refreshed(self, hosts: Iterable[str], certificates: Iterable[CustomCertificate], revision: int) -> TlsOptions:
        """These options with ``certificates`` serving ``hosts`` in place of what served them before (other
        hosts keep theirs), set by refresh ``revision``. Callers skip a refresh whose revision is not newer
        than ``certificates_revision``."""
        replaced = {h.lower() for h in hosts}
        merged: dict[str, CustomCertificate] = {c.certificate_id: c for c in certificates}
        for cert in self.certificates:
            others = [h for h in cert.hosts if h.lower() not in replaced]
            if not others:
                continue
            same = merged.get(cert.certificate_id)
            if same is not None:
                others = [*same.hosts, *(h for h in others if h not in same.hosts)]
                cert = same
            merged[cert.certificate_id] = (
                cert if others == list(cert.hosts) else cert.model_copy(update={"hosts": others})
            )
        return self.model_copy(update={"certificates": list(merged.values()), "certificates_revision": revision})


# --- certificates --------------------------------------------------------------------------------------


@register
class CertificatesChanged(Event):
    """The uploaded certificates of an application's hosts changed (one uploaded or deleted): what runs
    serves the new set without a deployment.

    An event, not a command: two services act on it (commands are a work queue, one consumer each).
    ``certificates`` is the whole set for ``hosts`` (the application's hosts), chosen as a deployment would
    choose them (empty: none is left, the hosts go back to ACME or HTTP). proxy-sync applies the routes that
    serve these hosts again, on every server, with the new set; the scheduler records it in the
    application's live and waiting deployments, so that a later scale or a route put back carries it.
    ``revision`` orders the changes of one application: one older than the set a route or deployment has is
    ignored, so a late redelivery never brings a deleted certificate back.
    """

    TYPE = "evt.certificates.changed"
    PRODUCERS = ("api",)
    CONSUMERS = ("proxy-sync", "scheduler")
    team_id: Id
    application_id: Id
    hosts: list[RouteHost] = Field(max_length=1000)
    certificates: list[CustomCertificate] = Field(default_factory=list, max_length=100)
    revision: int = Field(ge=1)


class CertificateEvent(Event):
    """Fields of the ``evt.certificate.*`` events about one host's certificate (not a message by itself)."""

    PRODUCERS = ("proxy-sync",)
    CONSUMERS = ("notifier", "api")  # the api keeps each host's certificate state
    host: RouteHost
    server_id: str = "local"
    route_id: str | None = None
    team_id: str | None = None
    application_id: str | None = None
    source: Literal["acme", "custom"] = "acme"


@register
class CertificateIssued(CertificateEvent):
    """A host is served with a new certificate (first issued, renewed, or uploaded and now live)."""

    TYPE = "evt.certificate.issued"
    issuer: str = Field(default="", max_length=1000)
    not_before: datetime
    not_after: datetime
    domains: list[str] = []  # every name the certificate covers
    fingerprint_sha256: str = Field(default="", max_length=95)


@register
class CertificateFailed(CertificateEvent):
    """A host could not get a certificate: its name does not resolve to its server (checked before the
    ACME server is asked), the ACME server refused or did not answer in time, or a custom certificate could
    not be served. ``stage`` says which; ``reason`` says it in words a person can act on."""

    TYPE = "evt.certificate.failed"
    stage: Literal["dns", "acme", "custom"]
    reason: str = Field(max_length=2000)
    expected_addresses: list[str] = []  # the server's addresses (stage dns)
    resolved_addresses: list[str] = []  # what the host resolved to (stage dns)
