"""The check of an uploaded certificate with ``cryptography`` (pure, no I/O): the rules of
``domain.certificates``, each refusal a ``CertificateRefused`` naming the part at fault."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from berth_api.domain.certificates import (
    EC_CURVES,
    MAX_CHAIN_CERTIFICATES,
    MAX_CHAIN_PEM_CHARS,
    MAX_KEY_PEM_CHARS,
    PEM_CERT,
    RSA_BITS,
    CertificateFacts,
    CertificateRefused,
    covers,
)


def fingerprint(cert: x509.Certificate) -> str:
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _certificates(text: str, field: str) -> list[x509.Certificate]:
    if PEM_CERT not in text:
        raise CertificateRefused(field, "not a PEM certificate (-----BEGIN CERTIFICATE----- ... expected)")
    try:
        return x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        raise CertificateRefused(field, "the PEM certificate does not parse") from None


def _key(text: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey:
    if len(text) > MAX_KEY_PEM_CHARS:
        raise CertificateRefused("/body/key", f"the key is limited to {MAX_KEY_PEM_CHARS} characters of PEM")
    if "ENCRYPTED" in text:
        raise CertificateRefused("/body/key", "the key is encrypted: give it without a passphrase")
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except TypeError:
        raise CertificateRefused("/body/key", "the key is encrypted: give it without a passphrase") from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateRefused("/body/key", "not a PEM private key (-----BEGIN PRIVATE KEY----- ...)") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if not RSA_BITS[0] <= key.key_size <= RSA_BITS[1]:
            raise CertificateRefused(
                "/body/key", f"an RSA key of {key.key_size} bits: {RSA_BITS[0]}-{RSA_BITS[1]} bits are accepted"
            )
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in EC_CURVES:
            raise CertificateRefused("/body/key", f"an EC key on {key.curve.name}: P-256, P-384 or P-521 only")
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise CertificateRefused("/body/key", "the key type is not accepted: RSA, EC (P-256/384/521) or Ed25519")


def key_type(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return f"rsa-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"ec-{key.curve.name}"
    return "ed25519"


def _spki(public: object) -> bytes:
    return public.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def dns_names(cert: x509.Certificate) -> tuple[str, ...]:
    """The leaf's DNS names: its subject alternative names, else its common name."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = ext.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return tuple(dict.fromkeys(n.lower() for n in names))


def _check_order(chain: list[x509.Certificate]) -> None:
    for i in range(len(chain) - 1):
        child, parent = chain[i], chain[i + 1]
        where = "the certificate" if i == 0 else f"intermediate {i}"
        try:
            if child.issuer != parent.subject:
                raise InvalidSignature
            child.verify_directly_issued_by(parent)
        except (InvalidSignature, ValueError, TypeError):
            raise CertificateRefused(
                "/body/chain",
                f"the chain is not in order: {where} is not issued by the next certificate "
                f"({parent.subject.rfc4514_string() or 'no subject'}); give the leaf first, then each issuer",
            ) from None


def _check_dates(chain: list[x509.Certificate], now: datetime) -> None:
    for i, cert in enumerate(chain):
        where = "the certificate" if i == 0 else f"intermediate {i}"
        field = "/body/certificate" if i == 0 else "/body/chain"
        if now < cert.not_valid_before_utc:
            raise CertificateRefused(field, f"{where} is not valid yet: from {cert.not_valid_before_utc.isoformat()}")
        if now > cert.not_valid_after_utc:
            raise CertificateRefused(field, f"{where} expired on {cert.not_valid_after_utc.isoformat()}")


def check(certificate: str, chain: str, key: str, hosts: Sequence[str], now: datetime) -> CertificateFacts:
    """The facts of an upload once every rule holds; raises ``CertificateRefused`` naming the first one that
    does not. ``certificate``: the leaf (a full chain is taken too: leaf first); ``chain``: the
    intermediates (may be empty); ``hosts``: the names it is to be served for (at least one)."""
    if len(certificate) + len(chain) > MAX_CHAIN_PEM_CHARS:
        raise CertificateRefused(
            "/body/chain", f"certificate and chain are limited to {MAX_CHAIN_PEM_CHARS} characters"
        )
    given = _certificates(certificate, "/body/certificate")
    rest = _certificates(chain, "/body/chain") if chain.strip() else []
    all_certs = given + rest
    if len(all_certs) > MAX_CHAIN_CERTIFICATES:
        raise CertificateRefused("/body/chain", f"at most {MAX_CHAIN_CERTIFICATES} certificates in the chain")
    private = _key(key)
    leaf = all_certs[0]
    if _spki(private.public_key()) != _spki(leaf.public_key()):
        raise CertificateRefused("/body/key", "the key does not match the certificate (its public key differs)")
    _check_order(all_certs)
    _check_dates(all_certs, now)
    names = dns_names(leaf)
    if not names:
        raise CertificateRefused("/body/certificate", "the certificate names no DNS host")
    for i, host in enumerate(hosts):
        if not any(covers(n, host) for n in names):
            raise CertificateRefused(
                f"/body/hosts/{i}", f"the certificate does not cover {host} (it names {', '.join(names)})"
            )
    pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in all_certs)
    return CertificateFacts(
        chain_pem=pem,
        names=names,
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string()[:1000],
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        fingerprint_sha256=fingerprint(leaf),
        key_type=key_type(private),
    )


def normalised_key(key: str) -> str:
    """The key as stored (sealed): PKCS#8 PEM, whatever PEM form it was given in (after ``check``)."""
    private = serialization.load_pem_private_key(key.encode(), password=None)
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
