"""The certificate a host is served with, read from a TLS handshake, and what proxy-sync makes of it.

Pure: the leaf certificate's DER bytes in, facts and decisions out (``tests/proxy/test_tls_config.py``).
A host "has a certificate" when the leaf presented for its name covers it (its SANs, a wildcard covering
one label) and is not a default certificate (Berth's own, ``domain/certificate.py``, or Traefik's
generated one): Traefik presents those when it has nothing for the name yet.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache

from berth_common.catalogue.tls import TlsOptions
from berth_proxy_sync.domain.certificate import COMMON_NAME as BERTH_DEFAULT_CN

DEFAULT_NAMES = (BERTH_DEFAULT_CN, "TRAEFIK DEFAULT CERT")


@dataclass(frozen=True)
class Served:
    """The leaf certificate presented for a host."""

    fingerprint_sha256: str  # upper-case hex pairs joined by ':'
    issuer: str
    subject_cn: str
    not_before: dt.datetime
    not_after: dt.datetime
    domains: tuple[str, ...] = field(default=())

    def covers(self, host: str) -> bool:
        host = host.lower()
        for name in self.domains:
            name = name.lower()
            if name == host:
                return True
            if name.startswith("*.") and host.count(".") >= 2 and host.split(".", 1)[1] == name[2:]:
                return True
        return False

    @property
    def is_default(self) -> bool:
        return self.subject_cn in DEFAULT_NAMES

    def serves(self, host: str, now: dt.datetime) -> bool:
        """A real certificate for ``host``, valid now."""
        return not self.is_default and self.covers(host) and self.not_before <= now < self.not_after


def fingerprint(der: bytes) -> str:
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def read(der: bytes) -> Served:
    from cryptography import x509  # resident once loaded: imported by what parses a served certificate
    from cryptography.x509.oid import ExtensionOID, NameOID

    cert = x509.load_der_x509_certificate(der)
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        domains = tuple(san.get_values_for_type(x509.DNSName))  # type: ignore[attr-defined]
    except x509.ExtensionNotFound:
        domains = ()
    return Served(
        fingerprint_sha256=fingerprint(der),
        issuer=cert.issuer.rfc4514_string()[:1000],
        subject_cn=str(cns[0].value) if cns else "",
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        domains=domains,
    )


# Traefik renews an ACME certificate when about a third of its lifetime is left (30 of 90 days, 2 of 6,
# 20 minutes of a certificate valid under a day): one is told as not renewed when half of that is gone too.
ACME_WARN_SHARE = 1 / 6


def expiring(served: Served, now: dt.datetime, days: float, *, acme: bool = False) -> float | None:
    """Days left when ``served`` ends within ``days`` (the ``evt.certificate.expiring`` threshold), else
    None. An ACME certificate (``acme``) is told within ``ACME_WARN_SHARE`` of its lifetime when that is
    shorter: a short-lived one (Let's Encrypt's 6-day certificates) is always within 14 days of its end,
    yet it is being renewed on time."""
    left = (served.not_after - now).total_seconds() / 86400
    if acme:
        days = min(days, (served.not_after - served.not_before).total_seconds() / 86400 * ACME_WARN_SHARE)
    return round(left, 2) if left <= days else None


def dns_problem(host: str, expected: list[str], resolved: list[str]) -> str | None:
    """Why ``host`` may not be given to the ACME server (it must resolve to the server's addresses only,
    so the CA reaches the server that answers its challenge), or None."""
    if not resolved:
        return (
            f"{host} does not resolve (no A or AAAA record): point it at {', '.join(expected)} "
            "before a certificate is asked for"
        )
    stray = [a for a in resolved if a not in expected]
    if stray:
        return (
            f"{host} resolves to {', '.join(resolved)}, not to the server that serves it "
            f"({', '.join(expected)}): fix its DNS records; no certificate was asked for"
        )
    return None


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ERROR = re.compile(r'error="((?:[^"\\]|\\.)*)"')


def acme_reason(log_text: str, host: str) -> str | None:
    """The CA's answer for ``host`` in Traefik's log (the last ACME error line naming it), or None."""
    for line in reversed(_ANSI.sub("", log_text).splitlines()):
        if host in line and "ACME" in line and (found := _ERROR.search(line)):
            return found.group(1).replace('\\"', '"')[:1500]
    return None


@lru_cache(maxsize=256)
def leaf_not_after(chain_pem: str) -> dt.datetime | None:
    """When the leaf of an uploaded chain (leaf first) ends; None when it does not parse (the api
    validated it: such a chain is served as it is)."""
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(chain_pem.encode()).not_valid_after_utc
    except ValueError:
        return None


def ended_uploads(tls: TlsOptions | None, now: dt.datetime) -> tuple[str, ...]:
    """The ids of the uploaded certificates of ``tls`` whose leaf has ended by ``now``."""
    ended = []
    for cert in tls.certificates if tls is not None else ():
        end = leaf_not_after(cert.chain_pem)
        if end is not None and end <= now:
            ended.append(cert.certificate_id)
    return tuple(ended)


def without_ended(tls: TlsOptions, now: dt.datetime) -> TlsOptions:
    """``tls`` without its ended uploaded certificates (the same object when none ended): their hosts are
    then served as if they had none (ACME when it is on, else HTTP only), as a deployment would choose."""
    ended = set(ended_uploads(tls, now))
    if not ended:
        return tls
    return tls.model_copy(update={"certificates": [c for c in tls.certificates if c.certificate_id not in ended]})
