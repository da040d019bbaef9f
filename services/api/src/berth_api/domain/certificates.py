"""Custom certificates a team uploads: the rules and what is kept of them (pure, no I/O).

A certificate is a PEM leaf, its intermediates (leaf first, then each issuer) and its private key. It is
accepted only when the key opens without a passphrase and is of a type Traefik serves (RSA of 2048-8192
bits, EC on P-256/P-384/P-521, Ed25519), the key matches the leaf, each certificate of the chain is issued
by the next one, every certificate is valid now, and every host it is given for is among the leaf's names
(``*.example.com`` covers one label: ``app.example.com``, not ``example.com`` nor ``a.b.example.com``).
Each refusal says which part is wrong and names the field (``CertificateRefused``). The parsing is in
``certificate_check`` (``cryptography``'s X.509, loaded when a certificate is uploaded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

MAX_CHAIN_PEM_CHARS = 65_536  # the catalogue's ``CustomCertificate.chain_pem`` cap
MAX_KEY_PEM_CHARS = 8_192  # an RSA-8192 key in PEM is about 6,400 characters
MAX_CHAIN_CERTIFICATES = 8
RSA_BITS = (2048, 8192)
EC_CURVES = ("secp256r1", "secp384r1", "secp521r1")
PEM_CERT = "-----BEGIN CERTIFICATE-----"


class CertificateRefused(ValueError):
    """The upload is not accepted: ``field`` is the JSON pointer of the part at fault, ``reason`` why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class CertificateFacts:
    """What is shown of an accepted certificate (nothing of its key but its type)."""

    chain_pem: str  # leaf first, then the intermediates, normalised PEM
    names: tuple[str, ...]  # the DNS names of the leaf (lowercased)
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str  # of the leaf's DER, "AB:CD:..."
    key_type: str  # rsa-2048, ec-secp256r1, ed25519


def covers(name: str, host: str) -> bool:
    """Whether the certificate name ``name`` covers ``host`` (a wildcard covers exactly one label)."""
    name, host = name.lower().rstrip("."), host.lower().rstrip(".")
    if name == host:
        return True
    if name.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == name[2:]
    return False


def assign(certs: Sequence[tuple[str, Sequence[str]]], hosts: Sequence[str]) -> dict[str, list[str]]:
    """Which certificate serves which of ``hosts``: ``certs`` are (id, its hosts) in order of preference;
    each host goes to the first that lists it, or lists a wildcard covering it (``covers``: an uploaded
    ``*.example.com`` serves every ``<label>.example.com`` host). Certificates serving none are left out."""
    out: dict[str, list[str]] = {}
    wanted = list(dict.fromkeys(h.lower() for h in hosts))
    taken: set[str] = set()
    for cert_id, names in certs:
        mine = [h for h in wanted if h not in taken and any(covers(n, h) for n in names)]
        if mine:
            out[cert_id] = mine
            taken.update(mine)
    return out
