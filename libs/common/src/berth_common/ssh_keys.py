"""SSH keys as text: generate an ed25519 pair, read a private key, fingerprint a public key.

Light on purpose (``cryptography`` is imported on first use, asyncssh never): the api handles keys when a
server is added and shows fingerprints, without loading the SSH client the scheduler connects with.
"""

from __future__ import annotations

import base64
import hashlib


class KeyProblem(ValueError):
    """Not a private key Berth can use (unreadable, or protected by a passphrase)."""


def generate_key_pair() -> tuple[str, str]:
    """A new ed25519 key pair: (private key in OpenSSH format, public key line for authorized_keys)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode() + " berth"


def public_key_of(private_key: str) -> str:
    """The public key line of a private key (OpenSSH or PEM; ed25519, ECDSA or RSA); :class:`KeyProblem`
    for anything else, a key with a passphrase included."""
    from cryptography.hazmat.primitives import serialization

    data = private_key.strip().encode() + b"\n"
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            key = serialization.load_ssh_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)  # type: ignore[assignment]
    except TypeError:
        raise KeyProblem("the private key is protected by a passphrase: give one without") from None
    except (ValueError, Exception) as exc:  # cryptography raises several kinds for garbage
        if isinstance(exc, KeyProblem):
            raise
        raise KeyProblem("not a private key (OpenSSH or PEM format expected)") from None
    try:
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    except (ValueError, TypeError):
        raise KeyProblem("this kind of key cannot be used for SSH (ed25519, ECDSA or RSA)") from None
    return public.decode()


def fingerprint(public_key: str) -> str:
    """The SHA-256 fingerprint of an OpenSSH public key line, as ``ssh-keygen -l`` shows it."""
    parts = public_key.split()
    if len(parts) < 2:
        raise ValueError("not an OpenSSH public key line")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise ValueError("not an OpenSSH public key line") from None
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
