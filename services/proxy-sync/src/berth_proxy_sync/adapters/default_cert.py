"""Traefik's default certificate checked (and made when needed) in a short-lived child process.

Checking and making the certificate (``domain/certificate.py``) needs ``cryptography``, whose compiled
bindings stay resident once imported; proxy-sync does it once per site at start, so a child process does it
and the service keeps only the text. ``python -m berth_proxy_sync.adapters.default_cert`` reads the current
file on stdin (empty: none) and writes the file to put in its place on stdout, or nothing when the current
one is still good.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

TIMEOUT_S = 120.0


class DefaultCertificateError(RuntimeError):
    """The child process could not check or make the certificate; the message has its error."""


def replacement(current: str | None) -> str | None:
    """The certificate file to write instead of ``current``, or None when ``current`` is still good."""
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
    """:func:`replacement` without blocking the event loop."""
    return await asyncio.to_thread(replacement, current)


def _main() -> None:
    from berth_proxy_sync.domain import certificate

    current = sys.stdin.read()
    if not certificate.still_good(current or None):
        sys.stdout.write(certificate.render_certificate(*certificate.self_signed()))


if __name__ == "__main__":
    _main()
