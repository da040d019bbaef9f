"""An application's HTTPS options: their checks and their default (pure, no I/O).

Stored in the application's configuration (``config["tls"]``) as given; ``acme`` None there means the
platform's default: certificates from the ACME server for an application with a custom domain when the
platform has ACME enabled (``BERTH_ACME_ENABLED``). The rules, each a 422 naming the field:

- a ``www`` redirect needs both the apex and its ``www.`` name among the application's hosts;
- ``dns-01`` only when the platform has a DNS provider (``BERTH_ACME_DNS_PROVIDER``);
- a wildcard host (``*.example.com``) gets a certificate by ``dns-01`` only: with ACME on (set, or the
  platform's default for an application with a custom domain) any other challenge is refused;
- ``hsts_preload`` asks for what the preload list requires: a max age of a year or more, and subdomains.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from berth_common.catalogue import CustomCertificate, TlsOptions

PRELOAD_MIN_AGE_S = 31_536_000
OPTION_KEYS = ("challenge", "redirect", "www", "hsts_max_age_s", "hsts_subdomains", "hsts_preload")


class TlsRefused(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def acme_on(stored: Mapping[str, Any] | None, custom_domains: bool, platform_acme: bool) -> bool:
    """Whether the application's hosts get certificates from the ACME server: as set, else the default."""
    given = (stored or {}).get("acme")
    if given is not None:
        return bool(given)
    return platform_acme and custom_domains


def www_pair(hosts: Sequence[str]) -> tuple[str, str] | None:
    """The first (apex, www.apex) pair among ``hosts``, if any."""
    names = {h.lower() for h in hosts}
    for host in sorted(names):
        if host.startswith("www.") and host[4:] in names:
            return host[4:], host
    return None


def check(
    stored: Mapping[str, Any] | None, hosts: Sequence[str], *, platform_acme: bool, dns_provider: str, loc: str
) -> None:
    """Raise ``TlsRefused`` (its field under ``loc``, e.g. ``/body/tls``) for the first rule the options
    of an application with ``hosts`` break."""
    tls = dict(stored or {})
    challenge = tls.get("challenge", "http-01")
    wildcards = [h for h in hosts if h.startswith("*.")]
    if wildcards and challenge != "dns-01" and acme_on(tls, True, platform_acme):  # the default too
        raise TlsRefused(
            f"{loc}/challenge",
            f"the wildcard host {wildcards[0]} gets a certificate by dns-01 only (the CA checks http-01 and "
            "tls-alpn-01 on one name, never on every name under it): set challenge to dns-01, set acme to "
            "false (an uploaded wildcard certificate, or HTTP only), or name the hosts one by one",
        )
    if not tls:
        return
    if challenge == "dns-01" and not dns_provider:
        raise TlsRefused(
            f"{loc}/challenge", "dns-01 needs a DNS provider configured on the platform (BERTH_ACME_DNS_PROVIDER)"
        )
    if tls.get("www", "none") != "none" and www_pair(hosts) is None:
        raise TlsRefused(
            f"{loc}/www",
            "a www redirect needs both the apex and its www. name among the application's hosts "
            "(e.g. example.com and www.example.com)",
        )
    if tls.get("hsts_preload"):
        if int(tls.get("hsts_max_age_s", 0)) < PRELOAD_MIN_AGE_S or not tls.get("hsts_subdomains"):
            raise TlsRefused(
                f"{loc}/hsts_preload",
                f"preload needs hsts_max_age_s of at least {PRELOAD_MIN_AGE_S} and hsts_subdomains",
            )


def options(
    stored: Mapping[str, Any] | None,
    custom_domains: bool,
    platform_acme: bool,
    certificates: Sequence[CustomCertificate] = (),
) -> TlsOptions:
    """The catalogue's options of a deployment: the stored ones, the default filled in, and the team's
    certificates for the application's hosts."""
    tls = dict(stored or {})
    values = {k: tls[k] for k in OPTION_KEYS if tls.get(k) is not None}
    return TlsOptions(acme=acme_on(tls, custom_domains, platform_acme), certificates=list(certificates), **values)


def shown(stored: Mapping[str, Any] | None, custom_domains: bool, platform_acme: bool) -> dict[str, Any]:
    """The options as an application's answer shows them: the effective values, and whether ``acme`` is
    the platform's default."""
    tls = dict(stored or {})
    effective = options(tls, custom_domains, platform_acme).model_dump(exclude={"certificates"})
    return {**effective, "acme_default": tls.get("acme") is None}


def status_of(row: Mapping[str, Any] | None, now: datetime) -> str:
    """A host's certificate status from its state row: ``pending`` (nothing reported), ``failed`` (the last
    attempt failed after the last issue), ``expired``, ``expiring`` (warned after the last issue), ``issued``."""
    if row is None:
        return "pending"
    issued_at, error_at, expiring_at = row.get("issued_at"), row.get("error_at"), row.get("expiring_at")
    if error_at is not None and (issued_at is None or error_at > issued_at):
        return "failed"
    not_after = row.get("not_after")
    if not_after is None:
        return "pending"
    if not_after <= now:
        return "expired"
    if expiring_at is not None and (issued_at is None or expiring_at > issued_at):
        return "expiring"
    return "issued"


def state_view(host: str, row: Mapping[str, Any] | None, now: datetime) -> dict[str, Any]:
    """A host's certificate state as the api shows it."""
    r = dict(row or {})
    error = None
    if r.get("error_at") is not None:
        error = {"stage": r["error_stage"], "reason": r.get("error_reason") or "", "at": r["error_at"]}
    expiring = None
    if r.get("expiring_at") is not None:
        expiring = {
            "days_left": r.get("expiring_days_left") or 0.0,
            "reason": r.get("expiring_reason") or "",
            "at": r["expiring_at"],
        }
    return {
        "host": host,
        "server_id": r.get("server_id"),
        "status": status_of(row, now),
        "source": r.get("source"),
        "issuer": r.get("issuer"),
        "not_before": r.get("not_before"),
        "not_after": r.get("not_after"),
        "domains": list(r.get("domains") or []),
        "fingerprint_sha256": r.get("fingerprint_sha256"),
        "last_error": error,
        "expiring": expiring,
        "updated_at": r.get("updated_at"),
    }
