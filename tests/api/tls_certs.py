"""Real certificates for the HTTPS tests, made with ``cryptography``: a root, an intermediate and leaves
(good, expired, not yet valid, of another key), as PEM text."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: Key, password: bytes | None = None) -> str:
    encryption = (
        serialization.BestAvailableEncryption(password) if password is not None else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode()


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Berth tests"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


@dataclass
class Issued:
    cert: x509.Certificate
    key: Key

    @property
    def pem(self) -> str:
        return cert_pem(self.cert)

    @property
    def key_pem(self) -> str:
        return key_pem(self.key)


def issue(
    cn: str,
    *,
    issuer: Issued | None = None,
    names: list[str] | None = None,
    key: Key | None = None,
    ca: bool = False,
    not_before: datetime | None = None,
    days: int = 90,
) -> Issued:
    """A certificate for ``names`` (a CA when ``ca``), signed by ``issuer`` (self-signed without one)."""
    key = key or ec_key()
    now = datetime.now(UTC)
    start = not_before or now - timedelta(days=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    signer = issuer.key if issuer else key
    algorithm = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return Issued(builder.sign(signer, algorithm), key)


@dataclass
class Pki:
    root: Issued
    intermediate: Issued

    def leaf(self, names: list[str], **options: object) -> Issued:
        return issue(names[0], issuer=self.intermediate, names=names, **options)  # type: ignore[arg-type]


def pki() -> Pki:
    root = issue("Berth Test Root", ca=True, days=3650)
    return Pki(root, issue("Berth Test Intermediate", issuer=root, ca=True, days=1825))


def fingerprint(cert: x509.Certificate) -> str:
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def upload_fields(host: str = "sweep.example.com") -> dict[str, object]:
    """The certificate, key and hosts of an upload the api accepts (a self-signed certificate for ``host``)."""
    leaf = issue(host, names=[host])
    return {"certificate": leaf.pem, "key": leaf.key_pem, "hosts": [host]}
