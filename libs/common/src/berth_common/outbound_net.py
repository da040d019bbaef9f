"""The outbound rule at connect time: resolve a name, check every address, connect to a checked one.

A check of the name alone is not enough: the name may resolve to a public address when it is validated
and to 127.0.0.1 when Berth connects (DNS rebinding), and a target may redirect elsewhere. So every
connection Berth opens for a team goes through :func:`checked_addresses` and connects to one of the
addresses it returned (never resolves the name again): for HTTP through :class:`GuardedBackend` (httpx's
network layer), and a redirect is checked by :func:`redirect_hook` before anyone follows it.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
import typing
from collections.abc import Awaitable, Callable, Iterable

import httpcore
import httpx

from berth_common.outbound import HostError, OutboundPolicy, Refusal, normalize_host


class OutboundRefused(Exception):
    """A target the outbound rule refuses; ``reason`` names the rule and the address, never a URL's path."""

    def __init__(self, refusal: Refusal, *, via: str = "") -> None:
        self.refusal = refusal
        self.reason = (f"{via}: " if via else "") + refusal.reason
        super().__init__(self.reason)


async def checked_addresses(host: str, port: int, policy: OutboundPolicy) -> list[str]:
    """The addresses of ``host`` to connect to, every one allowed by ``policy``. Raises
    :class:`OutboundRefused` when any address (or the name itself) is refused, ``OSError`` when the name
    does not resolve, :class:`HostError` when ``host`` is not a host."""
    found = normalize_host(host)
    if not isinstance(found, str):
        refusal = policy.check_address(found)
        if refusal is not None:
            raise OutboundRefused(refusal)
        return [str(found)]
    refusal = policy.check_host(found)
    if refusal is not None:
        raise OutboundRefused(refusal)
    infos = await asyncio.get_running_loop().getaddrinfo(found, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        refusal = policy.check_address(ip, found)
        if refusal is not None:
            raise OutboundRefused(refusal, via=f"{found} resolves to {ip}")
        if str(ip) not in addresses:
            addresses.append(str(ip))
    if not addresses:
        raise OSError(f"{found} has no address")
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network layer with the outbound rule: a TCP connection goes only to checked addresses.

    TLS still verifies the certificate against the name in the URL (httpcore passes it as the server name).
    """

    def __init__(self, policy: OutboundPolicy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        from httpcore._backends.auto import AutoBackend

        self.policy = policy
        self.inner = inner or AutoBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await checked_addresses(host, port, self.policy)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror or exc}") from None
        except HostError as exc:
            raise httpcore.ConnectError(f"bad host: {exc}") from None
        last: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[typing.Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not outbound targets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


@functools.cache
def verified_tls() -> ssl.SSLContext:
    """The TLS settings of a verified outbound connection (httpx's default: the certificate and its name
    checked against certifi's CA bundle), made once per process and shared by every client: httpx loads
    the bundle again for each client it makes (30-70 ms of CPU), and a backup, a notification or a probe
    makes a client each."""
    return httpx.create_ssl_context(trust_env=False)


def guarded_transport(policy: OutboundPolicy, **options: typing.Any) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection obeys ``policy`` (``options`` as for httpx's transport;
    ``verify`` left out or True: :func:`verified_tls`)."""
    if options.get("verify", True) is True:
        options["verify"] = verified_tls()
    transport = httpx.AsyncHTTPTransport(**options)
    pool = transport._pool
    if not isinstance(pool, httpcore.AsyncConnectionPool):  # a proxy: its own address is what is reached
        raise TypeError("a guarded transport connects directly (no proxy)")
    pool._network_backend = GuardedBackend(policy)
    return transport


def redirect_hook(policy: OutboundPolicy) -> Callable[[httpx.Response], Awaitable[None]]:
    """An httpx response hook: a redirect whose target the rule refuses raises :class:`OutboundRefused`
    (the connection to a followed redirect is checked again by :class:`GuardedBackend`)."""

    async def check(response: httpx.Response) -> None:
        if not response.has_redirect_location:
            return
        target = response.request.url.join(response.headers["location"])
        try:
            refusal = policy.check_host(target.host)
        except HostError:
            return  # httpx refuses a redirect without a valid host itself
        if refusal is not None:
            raise OutboundRefused(refusal, via=f"redirect to {target.scheme}://{target.host}")

    return check


def guarded_client(policy: OutboundPolicy, **options: typing.Any) -> httpx.AsyncClient:
    """An httpx client for a team's targets: guarded connections, checked redirects, no proxy from the
    environment (a proxy would make the check meaningless)."""
    transport_options = {k: options.pop(k) for k in ("verify", "http2", "retries", "limits") if k in options}
    return httpx.AsyncClient(
        transport=guarded_transport(policy, **transport_options),
        event_hooks={"response": [redirect_hook(policy)]},
        trust_env=False,
        **options,
    )


async def connected_socket(host: str, port: int, policy: OutboundPolicy) -> socket.socket:
    """A TCP socket connected to a checked address of ``host`` (for clients that take a socket, such as SMTP's:
    they keep ``host`` for TLS). Raises :class:`OutboundRefused` or ``OSError``."""
    loop = asyncio.get_running_loop()
    last: OSError | None = None
    for address in await checked_addresses(host, port, policy):
        ip = ipaddress.ip_address(address)
        sock = socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (address, port))
        except OSError as exc:
            sock.close()
            last = exc
            continue
        return sock
    assert last is not None
    raise last
