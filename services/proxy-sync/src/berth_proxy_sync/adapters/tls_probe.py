"""The leaf certificate a Traefik presents for a host name: one TLS handshake with SNI, nothing verified
(what is presented is what proxy-sync wants to see, trusted or not)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl


def _context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def leaf(address: str, port: int, host: str, timeout_s: float = 5.0) -> bytes | None:
    """The DER bytes of the leaf presented for ``host`` at ``address:port``; None when no handshake."""
    try:
        async with asyncio.timeout(timeout_s):
            _reader, writer = await asyncio.open_connection(address, port, ssl=_context(), server_hostname=host)
    except (OSError, TimeoutError, ssl.SSLError):
        return None
    try:
        sslobj = writer.get_extra_info("ssl_object")
        return sslobj.getpeercert(binary_form=True) if sslobj is not None else None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
