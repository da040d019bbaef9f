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

``cryptography`` is imported by the two functions that need it, which proxy-sync runs in a child process
(``adapters/default_cert.py``): its compiled bindings stay resident once imported.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import yaml

DEFAULT_CERT_FILE = "000-berth-default-cert.yml"
CERT_MARKER = "# berth proxy-sync: Traefik's default certificate (spares it a new RSA key on every reload)\n"
COMMON_NAME = "berth default certificate"
VALID_DAYS = 3650


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


def render_certificate(cert_pem: str, key_pem: str) -> str:
    return CERT_MARKER + yaml.safe_dump(certificate_config(cert_pem, key_pem), sort_keys=True)


def is_ours(text: str | None) -> bool:
    return text is not None and text.startswith(CERT_MARKER)


def still_good(text: str | None, now: dt.datetime | None = None) -> bool:
    """``text`` is a certificate file this service wrote, complete, and valid for at least 30 more days."""
    if text is None or not is_ours(text):
        return False
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        default = yaml.safe_load(text)["tls"]["stores"]["default"]["defaultCertificate"]
        cert = x509.load_pem_x509_certificate(default["certFile"].encode())
        serialization.load_pem_private_key(default["keyFile"].encode(), password=None)
    except (yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError):
        return False
    return cert.not_valid_after_utc > (now or dt.datetime.now(dt.UTC)) + dt.timedelta(days=30)
