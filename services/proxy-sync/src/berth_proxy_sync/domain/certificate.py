"""Traefik's default TLS certificate, given to it once instead of made again on every reload.

Without a default certificate in its ``default`` TLS store, Traefik generates a self-signed one (an RSA
2048 key) each time it applies a configuration, and every route change is a reload: the key is most of
the reload's CPU time, whatever the number of routes, and delays the new route being served (figures in
benchmarks/README.md). The certificate is self-signed (P-256, ten years) and only ever presented where Traefik would
have presented its own generated one (a TLS entry point and no certificate matching the SNI); its
PEM text is inlined in the file (Traefik reads a value that is not a path as the content), so the file
works wherever the directory is mounted.

The file is written by proxy-sync at start when it is missing, broken or near its end; it carries its own
marker line (not the route files' ``MANAGED_MARKER``), so the reconcile never treats it as a route. An
operator who configures their own default certificate turns it off (``BERTH_TRAEFIK_DEFAULT_CERT=false``):
Traefik keeps the first ``default`` store it reads, and this file sorts first.

``cryptography`` is imported by the functions that need it, which proxy-sync runs in a child process
(``adapters/default_cert.py``): its compiled bindings stay resident once imported. So that the common case (a
good file of ours at start) needs no child (a Python start: about 0.1 s of CPU), the file carries the facts ``still_good``
establishes on a second comment line, written by the child from the certificate itself: its end (``not
after``) and the sha256 of the certificate and key PEM texts that were checked. ``known_good`` reads them
without ``cryptography`` and trusts them only for our marker and exactly those PEM texts (a file damaged,
cut or given another certificate since no longer matches); when unsure, the child decides. Traefik reads
only the YAML, so comments change nothing for it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from typing import Any

import yaml

DEFAULT_CERT_FILE = "000-berth-default-cert.yml"
CERT_MARKER = "# berth proxy-sync: Traefik's default certificate (spares it a new RSA key on every reload)\n"
COMMON_NAME = "berth default certificate"
VALID_DAYS = 3650
RENEW_BEFORE = dt.timedelta(days=30)  # made again this long before its end
KNOWN_MAX_CHARS = 16 * 1024  # ours is about 1 KiB: a larger file is not parsed in the service, the child decides
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
FACTS_RE = re.compile(r"# not after (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ), sha256 of the PEM texts ([0-9a-f]{64})\n")


def self_signed(now: dt.datetime | None = None) -> tuple[str, str]:
    """A new self-signed certificate and its key, PEM text (about 1 ms: a P-256 key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, COMMON_NAME)])
    start = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=VALID_DAYS))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return cert_pem, key_pem


def certificate_config(cert_pem: str, key_pem: str) -> dict[str, Any]:
    """The dynamic configuration: the ``default`` store's default certificate, PEM inlined."""
    return {"tls": {"stores": {"default": {"defaultCertificate": {"certFile": cert_pem, "keyFile": key_pem}}}}}


def pem_digest(cert_pem: str, key_pem: str) -> str:
    """The sha256 (hex) the facts line gives for these PEM texts."""
    return hashlib.sha256(cert_pem.encode() + b"\x00" + key_pem.encode()).hexdigest()


def facts_line(cert_pem: str, key_pem: str, not_after: dt.datetime) -> str:
    """The second comment line: the certificate's end and the digest of the PEM texts it is true of."""
    end = not_after.astimezone(dt.UTC).strftime(TIME_FORMAT)
    return f"# not after {end}, sha256 of the PEM texts {pem_digest(cert_pem, key_pem)}\n"


def render_certificate(cert_pem: str, key_pem: str) -> str:
    """The file: our marker, the facts line (the end read from ``cert_pem``: needs ``cryptography``), the
    configuration."""
    from cryptography import x509

    not_after = x509.load_pem_x509_certificate(cert_pem.encode()).not_valid_after_utc
    body = yaml.safe_dump(certificate_config(cert_pem, key_pem), sort_keys=True)
    return CERT_MARKER + facts_line(cert_pem, key_pem, not_after) + body


def is_ours(text: str | None) -> bool:
    return text is not None and text.startswith(CERT_MARKER)


def pem_pair(text: str) -> tuple[str, str] | None:
    """The certificate and key PEM texts of a certificate file, or None when it does not hold them."""
    try:
        default = yaml.safe_load(text)["tls"]["stores"]["default"]["defaultCertificate"]
        cert, key = default["certFile"], default["keyFile"]
    except (yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError):
        return None
    return (cert, key) if isinstance(cert, str) and isinstance(key, str) else None


def still_good(text: str | None, now: dt.datetime | None = None) -> bool:
    """``text`` is a certificate file this service wrote, complete, and valid for at least 30 more days
    (``RENEW_BEFORE``); parses the PEM texts with ``cryptography``."""
    if text is None or not is_ours(text):
        return False
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    pair = pem_pair(text)
    if pair is None:
        return False
    try:
        cert = x509.load_pem_x509_certificate(pair[0].encode())
        serialization.load_pem_private_key(pair[1].encode(), password=None)
    except (TypeError, ValueError):
        return False
    return cert.not_valid_after_utc > (now or dt.datetime.now(dt.UTC)) + RENEW_BEFORE


def known_good(text: str | None, now: dt.datetime | None = None) -> bool:
    """``still_good`` decided from the file's facts line, without ``cryptography``: our marker, a facts line
    whose digest is that of the file's PEM texts, and an end at least ``RENEW_BEFORE`` away. False means
    unsure (no facts: a file of an older proxy-sync; or not good): the child decides."""
    if text is None or not is_ours(text) or len(text) > KNOWN_MAX_CHARS:
        return False
    facts = FACTS_RE.match(text, len(CERT_MARKER))
    pair = pem_pair(text) if facts is not None else None
    if facts is None or pair is None or not hmac.compare_digest(pem_digest(*pair), facts.group(2)):
        return False
    try:
        not_after = dt.datetime.strptime(facts.group(1), TIME_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        return False
    return not_after > (now or dt.datetime.now(dt.UTC)) + RENEW_BEFORE
