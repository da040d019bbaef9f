"""Traefik's ACME configuration as data: one resolver per challenge (HTTP-01, TLS-ALPN-01, DNS-01 through a
lego provider), the directory, the CA bundle, the certificates' lifetime, read from the platform's
``BERTH_ACME_*`` settings. Traefik's own ACME client does the talking; Berth only writes its configuration
(``berth_common.traefik`` puts it into the static configuration)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

# ACME (certificates from Let's Encrypt or any ACME server): Traefik's own client does the talking; Berth
# only writes its configuration. One resolver per challenge; a router names the one its host uses.
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
RESOLVERS = {"http-01": "berth-http", "tls-alpn-01": "berth-tls", "dns-01": "berth-dns"}
WEBSECURE = "websecure"
ACME_DIR = "/etc/traefik/acme"  # in a server's container: the host folder that keeps the storage file
CERTS_DIR = "/etc/traefik/certs"  # in a server's container: uploaded certificates (proxy-sync writes them)
CA_BUNDLE_IN_CONTAINER = "/etc/traefik/acme-ca.pem"
# The settings every Traefik of the platform reads its ACME configuration from (the cli's environment,
# proxy-sync's settings): ``BERTH_ACME_<NAME>``.
ACME_ENV = {
    "directory_url": "BERTH_ACME_DIRECTORY_URL",
    "email": "BERTH_ACME_EMAIL",
    "ca_bundle": "BERTH_ACME_CA_BUNDLE",
    "key_type": "BERTH_ACME_KEY_TYPE",
    "dns_provider": "BERTH_ACME_DNS_PROVIDER",
    "dns_resolvers": "BERTH_ACME_DNS_RESOLVERS",
    "dns_env": "BERTH_ACME_DNS_ENV",
    "dns_propagation": "BERTH_ACME_DNS_PROPAGATION",
    "certificate_hours": "BERTH_ACME_CERTIFICATE_HOURS",
}
# The lifetime, in hours, of the certificates the ACME server issues (Traefik's ``certificatesDuration``,
# 90 days by default): Traefik derives from it when it looks for certificates to renew and how long before
# their end it renews them (under 24 hours: every minute, 20 minutes before; from 1 day: 6 hours before; from
# 6 days: 2 days before; from 30 days: 10 days before; from 90 days: 30 days before). A CA profile with
# short-lived certificates (Let's Encrypt's 6-day ones) needs its own value.
DEFAULT_CERTIFICATE_HOURS = 2160
MAX_CERTIFICATE_HOURS = 24 * 398  # the longest a publicly trusted TLS certificate may be valid
KEY_TYPES = ("EC256", "EC384", "RSA2048", "RSA4096", "RSA8192")
# Where lego looks for the TXT record before it tells the CA to check it: the zone's authoritative
# nameservers (found by an SOA lookup; lego's default), or every one of the resolvers given (a DNS server
# that is authoritative for the zone but cannot be found by SOA: a private or split-horizon one).
DNS_PROPAGATION = {
    "authoritative": None,
    "resolvers": {"disableANSChecks": True, "requireAllRNS": True},
}


@dataclass(frozen=True)
class Acme:
    """How a Traefik asks its ACME server for certificates.

    ``directory_url``: the ACME directory (Let's Encrypt's production one by default). ``storage``: the
    file Traefik keeps its account and certificates in (kept across restarts). ``ca_bundle``: a PEM file of
    the CA that signs the ACME server's own HTTPS certificate when it is not a public one (a private or test
    CA such as pebble's): given to Traefik as ``LEGO_CA_CERTIFICATES``. ``dns_provider``: a lego DNS
    provider's name (``cloudflare``, ``route53``, ...) for DNS-01; its credentials are the provider's own
    environment variables, named in ``dns_env`` (``NAME=value`` pairs) and given to Traefik's process
    (never in a repr). ``dns_propagation``: where the TXT record is looked for before the CA is told
    (``DNS_PROPAGATION``); ``resolvers`` needs ``dns_resolvers``. ``certificate_hours``: how long the
    certificates the ACME server issues are valid (``DEFAULT_CERTIFICATE_HOURS``), so Traefik renews them
    in time.
    """

    storage: str
    directory_url: str = LETS_ENCRYPT
    email: str = ""
    ca_bundle: str | None = None
    key_type: str = "EC256"
    dns_provider: str | None = None
    dns_resolvers: tuple[str, ...] = ()
    dns_env: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    dns_propagation: str = "authoritative"
    certificate_hours: int = DEFAULT_CERTIFICATE_HOURS

    def __post_init__(self) -> None:
        if not self.directory_url.startswith(("https://", "http://")) or any(c.isspace() for c in self.directory_url):
            raise ValueError(f"{ACME_ENV['directory_url']} must be an http(s) URL")
        if self.key_type not in KEY_TYPES:
            raise ValueError(f"{ACME_ENV['key_type']} must be one of {', '.join(KEY_TYPES)}")
        if self.dns_provider is not None and not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", self.dns_provider):
            raise ValueError(f"{ACME_ENV['dns_provider']} must be a lego provider name")
        for name, _ in self.dns_env:
            if not re.fullmatch(r"[A-Z][A-Z0-9_]{0,127}", name):
                raise ValueError(f"{ACME_ENV['dns_env']}: {name!r} is not an environment variable name")
        if self.dns_propagation not in DNS_PROPAGATION:
            raise ValueError(f"{ACME_ENV['dns_propagation']} must be one of {', '.join(DNS_PROPAGATION)}")
        if self.dns_propagation == "resolvers" and not self.dns_resolvers:
            raise ValueError(f"{ACME_ENV['dns_propagation']}=resolvers needs {ACME_ENV['dns_resolvers']}")
        hours = self.certificate_hours
        if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= MAX_CERTIFICATE_HOURS:
            raise ValueError(
                f"{ACME_ENV['certificate_hours']} must be a whole number of hours, 1 to {MAX_CERTIFICATE_HOURS}"
            )

    def resolvers(self, web_entry_point: str = "web") -> dict[str, object]:
        """``certificatesResolvers``: HTTP-01 (on the web entry point), TLS-ALPN-01 (on websecure) and,
        with a DNS provider, DNS-01; one storage file (Traefik keeps each resolver's part in it); each with
        the certificates' lifetime (when Traefik renews them)."""
        base: dict[str, object] = {
            "caServer": self.directory_url,
            "storage": self.storage,
            "keyType": self.key_type,
            "certificatesDuration": self.certificate_hours,
        }
        if self.email:
            base["email"] = self.email
        out: dict[str, object] = {
            RESOLVERS["http-01"]: {"acme": {**base, "httpChallenge": {"entryPoint": web_entry_point}}},
            RESOLVERS["tls-alpn-01"]: {"acme": {**base, "tlsChallenge": {}}},
        }
        if self.dns_provider:
            dns: dict[str, object] = {"provider": self.dns_provider}
            if self.dns_resolvers:
                dns["resolvers"] = list(self.dns_resolvers)
            if propagation := DNS_PROPAGATION[self.dns_propagation]:
                dns["propagation"] = dict(propagation)
            out[RESOLVERS["dns-01"]] = {"acme": {**base, "dnsChallenge": dns}}
        return out

    def env(self, ca_bundle_path: str | None = None) -> dict[str, str]:
        """The environment Traefik's process needs: the CA bundle for a private ACME server, the DNS
        provider's credentials."""
        env = dict(self.dns_env)
        bundle = ca_bundle_path or self.ca_bundle
        if bundle:
            env["LEGO_CA_CERTIFICATES"] = bundle
        return env


def acme_from_env(env: Mapping[str, str], storage: str) -> Acme:
    """The platform's ACME settings from ``BERTH_ACME_*`` (``ACME_ENV``); ``BERTH_ACME_DNS_ENV`` is
    ``NAME=value`` pairs separated by commas or new lines, ``BERTH_ACME_DNS_RESOLVERS`` ``host:port`` ones
    separated by commas, ``BERTH_ACME_CERTIFICATE_HOURS`` a whole number of hours."""

    def get(key: str) -> str | None:
        value = env.get(ACME_ENV[key], "").strip()
        return value or None

    pairs = []
    for item in re.split(r"[,\n]", get("dns_env") or ""):
        if item.strip():
            name, sep, value = item.strip().partition("=")
            if not sep:
                raise ValueError(f"{ACME_ENV['dns_env']}: {name!r} is not NAME=value")
            pairs.append((name.strip(), value.strip()))
    hours = get("certificate_hours") or str(DEFAULT_CERTIFICATE_HOURS)
    if not hours.isdigit():
        raise ValueError(f"{ACME_ENV['certificate_hours']} must be a whole number of hours, not {hours!r}")
    return Acme(
        storage=storage,
        directory_url=get("directory_url") or LETS_ENCRYPT,
        email=get("email") or "",
        ca_bundle=get("ca_bundle"),
        key_type=get("key_type") or "EC256",
        dns_provider=get("dns_provider"),
        dns_resolvers=tuple(r.strip() for r in (get("dns_resolvers") or "").split(",") if r.strip()),
        dns_env=tuple(pairs),
        dns_propagation=get("dns_propagation") or "authoritative",
        certificate_hours=int(hours),
    )
