"""A real SMTP server for the notifier's e-mail tests: aiosmtpd on 127.0.0.1, plain, STARTTLS or implicit TLS,
optionally requiring AUTH, with a throw-away self-signed certificate."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any


@dataclass
class SmtpReceiver:
    """A real aiosmtpd server on 127.0.0.1 (its own thread and loop)."""

    tls: str = "plain"  # plain | starttls | tls
    cert_dir: Path | None = None
    credentials: tuple[str, str] | None = None  # require AUTH with these
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    port: int = 0
    cert_file: Path | None = None

    def start(self) -> SmtpReceiver:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        from berth_cli.components import free_port

        outer = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                msg = message_from_bytes(envelope.original_content, policy=policy.default)
                outer.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
                outer.messages.append(msg)  # type: ignore[arg-type]
                return "250 Message accepted for delivery"

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
            ok = (
                self.credentials is not None
                and (auth_data.login.decode(), auth_data.password.decode()) == self.credentials
            )
            return AuthResult(success=ok)

        kwargs: dict[str, Any] = {}
        ssl_ctx = None
        if self.tls != "plain":
            assert self.cert_dir is not None
            self.cert_file, key_file = self_signed_cert(self.cert_dir)
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(self.cert_file, key_file)
            if self.tls == "starttls":
                kwargs.update(tls_context=ctx, require_starttls=True)
            else:
                ssl_ctx = ctx  # implicit TLS: the listening socket is wrapped
        if self.credentials:
            # aiosmtpd only knows of STARTTLS sessions as secure; an implicit-TLS session is TLS from the start.
            kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=self.tls == "starttls")
        self.port = free_port()
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, ssl_context=ssl_ctx, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    async def wait_messages(self, n: int, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.messages)} of {n} messages arrived")
            await asyncio.sleep(0.02)
        return self.messages


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A CA-flagged self-signed certificate for 127.0.0.1 and localhost (trust it as its own CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berth-test-smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file
