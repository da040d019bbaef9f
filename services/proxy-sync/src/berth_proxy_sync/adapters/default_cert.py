"""Traefik's default certificate checked (and made when needed) in a short-lived child process.

Checking and making the certificate (``domain/certificate.py``) needs ``cryptography``, whose compiled
bindings stay resident once imported; proxy-sync does it once per site at start, so a child process does it
and the service keeps only the text. ``python -m berth_proxy_sync.adapters.default_cert`` reads the current
file on stdin (empty: none) and writes the file to put in its place on stdout, or nothing when the current
one is still good.

The child starts only when the service cannot tell by itself: a file whose facts line says it is good
(``certificate.known_good``, no ``cryptography``) is kept without one. A file still good but without that
line (written before it existed) is written again by the child with the same certificate and the line, so
the next start needs no child either.
"""

from __future__ import annotations

import subprocess
import sys

from berth_proxy_sync.domain import certificate

TIMEOUT_S = 120.0


class DefaultCertificateError(RuntimeError):
    """The child process could not check or make the certificate; the message has its error."""


def replacement(current: str | None) -> str | None:
    """The certificate file to write instead of ``current``, or None when ``current`` is still good (known
    from its facts line without a child, else asked of the child)."""
    if certificate.known_good(current):
        return None
    return _ask_child(current)


def _ask_child(current: str | None) -> str | None:
    """The child's answer for ``current`` (see the module's docstring)."""
    proc = subprocess.run(
        [sys.executable, "-m", __name__],
        input=current or "",
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise DefaultCertificateError(f"default certificate (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout or None


async def areplacement(current: str | None) -> str | None:
    """:func:`replacement` without blocking the event loop (a thread only for the child). ``asyncio`` is
    imported here: the child, which runs this module, never needs it (about a quarter of its start)."""
    import asyncio

    if certificate.known_good(current):
        return None
    return await asyncio.to_thread(_ask_child, current)


def _main() -> None:
    current = sys.stdin.read() or None
    if certificate.known_good(current):
        return
    if current is not None and certificate.still_good(current):
        pair = certificate.pem_pair(current)
        assert pair is not None  # still good: it holds them
        sys.stdout.write(certificate.render_certificate(*pair))  # the same certificate, with its facts line
        return
    sys.stdout.write(certificate.render_certificate(*certificate.self_signed()))


if __name__ == "__main__":
    _main()
