"""The outbound rule at connect time: checked addresses, connections to them only, checked redirects."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from berth_common.outbound import OutboundPolicy, Refusal
from berth_common.outbound_net import OutboundRefused, checked_addresses, guarded_client, verified_tls

LOOPBACK_ALLOWED = OutboundPolicy.from_entries(["127.0.0.1/32"])


class Receiver:
    """A loopback HTTP server answering each path from ``routes`` (status, headers) and counting requests."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str]]] = {}
        self.paths: list[str] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ", 2)[1].decode()
        self.paths.append(path)
        status, headers = self.routes.get(path, (200, {}))
        lines = [f"HTTP/1.1 {status} X", "Content-Length: 2", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\nok").encode())
        await writer.drain()
        writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    server = await asyncio.start_server(r.handle, "127.0.0.1", 0)
    r.port = server.sockets[0].getsockname()[1]
    async with server:
        yield r


async def test_a_loopback_target_is_refused_before_any_connection(receiver: Receiver) -> None:
    async with guarded_client(OutboundPolicy()) as client:
        for host in ("127.0.0.1", "2130706433", "0x7f.1", "[::ffff:127.0.0.1]", "localhost"):
            with pytest.raises(OutboundRefused) as caught:
                await client.get(f"http://{host}:{receiver.port}/")
            assert caught.value.refusal.rule == "loopback"
    assert receiver.paths == []


async def test_an_allowed_target_is_reached(receiver: Receiver) -> None:
    async with guarded_client(LOOPBACK_ALLOWED) as client:
        resp = await client.get(f"http://127.0.0.1:{receiver.port}/hello")
    assert (resp.status_code, resp.text, receiver.paths) == (200, "ok", ["/hello"])


async def test_every_resolved_address_is_checked_and_the_connection_goes_to_a_checked_one(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name that resolves to loopback (DNS rebinding) is refused; an allowed name is connected to at the
    address that was checked (the name is not resolved a second time)."""
    answers = {"rebind.example": ["127.0.0.1"], "hooks.example": ["127.0.0.1"]}
    asked: list[str] = []

    async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    with pytest.raises(OutboundRefused) as caught:
        await checked_addresses("rebind.example", 80, OutboundPolicy())
    assert caught.value.refusal == Refusal("loopback", "127.0.0.1")
    assert caught.value.reason.startswith("rebind.example resolves to 127.0.0.1: outbound rule: 127.0.0.1 is")

    policy = OutboundPolicy().with_allowance(["hooks.example"])
    async with guarded_client(policy) as client:
        resp = await client.get(f"http://hooks.example:{receiver.port}/named")
        with pytest.raises(OutboundRefused):
            await client.get(f"http://rebind.example:{receiver.port}/")
    assert (resp.status_code, receiver.paths) == (200, ["/named"])
    assert asked == ["rebind.example", "hooks.example", "rebind.example"]


@pytest.mark.parametrize(
    ("location", "rule"),
    [
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://127.0.0.2:{port}/inside", "loopback"),
        ("http://[::1]:{port}/inside", "loopback"),
        ("http://2130706434:{port}/inside", "loopback"),
    ],
)
async def test_a_redirect_to_a_refused_target_is_not_followed(receiver: Receiver, location: str, rule: str) -> None:
    receiver.routes["/start"] = (302, {"Location": location.format(port=receiver.port)})
    for follow in (True, False):
        async with guarded_client(LOOPBACK_ALLOWED, follow_redirects=follow) as client:
            with pytest.raises(OutboundRefused) as caught:
                await client.get(f"http://127.0.0.1:{receiver.port}/start")
        assert caught.value.refusal.rule == rule
        assert caught.value.reason.startswith("redirect to http://")
    assert receiver.paths == ["/start", "/start"]


async def test_a_redirect_to_an_allowed_target_is_followed(receiver: Receiver) -> None:
    receiver.routes["/start"] = (307, {"Location": "/end"})
    async with guarded_client(LOOPBACK_ALLOWED, follow_redirects=True) as client:
        resp = await client.get(f"http://127.0.0.1:{receiver.port}/start")
    assert (resp.status_code, receiver.paths) == (200, ["/start", "/end"])


async def test_a_name_that_does_not_resolve_is_a_connect_error(monkeypatch: pytest.MonkeyPatch) -> None:
    async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    async with guarded_client(OutboundPolicy()) as client:
        with pytest.raises(httpx.ConnectError, match=r"cannot resolve nowhere\.example: Name or service not known"):
            await client.get("http://nowhere.example/")


def _tls_of(client: httpx.AsyncClient) -> Any:
    return client._transport._pool._ssl_context  # type: ignore[attr-defined]


async def test_guarded_clients_share_one_verifying_tls_context_and_keep_one_given() -> None:
    policy = OutboundPolicy()
    first, second = guarded_client(policy), guarded_client(policy, verify=True)
    unverified = guarded_client(policy, verify=False)
    try:
        shared = _tls_of(first)
        assert shared is _tls_of(second) is verified_tls()
        assert shared.verify_mode == ssl.CERT_REQUIRED and shared.check_hostname
        assert _tls_of(unverified) is not shared and _tls_of(unverified).verify_mode == ssl.CERT_NONE
    finally:
        for c in (first, second, unverified):
            await c.aclose()


async def test_an_s3_client_verifies_with_the_shared_tls_context() -> None:
    from berth_common.s3 import requests as rq
    from berth_common.s3.client import S3Client
    from berth_common.s3.signing import Credentials

    bucket = rq.Bucket(endpoint="https://s3.example.com", bucket="backups", region="us-east-1")
    for policy in (None, OutboundPolicy()):
        client = S3Client(bucket, Credentials("AKIDEXAMPLE", "secret"), policy=policy)
        try:
            assert _tls_of(client._http) is verified_tls()
        finally:
            await client._http.aclose()
