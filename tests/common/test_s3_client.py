"""Berth's S3 client against a real S3 API (moto, signature checks on): every operation, path style, and
each failure as a clear error carrying S3's own code (or the connection's), never a credential."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from berth_cli.components import free_port
from berth_common.outbound import OutboundPolicy
from berth_common.s3 import Bucket, Credentials
from berth_common.s3.client import S3Client, S3Error
from tests.support.s3 import MotoS3

BUCKET = "client-tests"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    server = MotoS3(tmp_path_factory.mktemp("moto") / "moto.log").start()
    server.make_bucket(BUCKET)
    yield server
    server.stop()


def _client(moto: MotoS3, *, bucket: str = BUCKET, access: str | None = None, secret: str | None = None) -> S3Client:
    creds = Credentials(access or moto.access_key, secret or moto.secret_key)
    return S3Client(Bucket(moto.endpoint, bucket), creds, timeout_s=5)


async def test_every_operation_round_trips(moto: MotoS3) -> None:
    c = _client(moto)
    try:
        key = "team 1/db+1/x.dump.gz"  # spaces and '+' are encoded as SigV4 wants
        upload = await c.create_multipart(key)
        first = await c.upload_part(key, upload, 1, b"a" * (5 << 20))
        second = await c.upload_part(key, upload, 2, b"tail")
        await c.complete_multipart(key, upload, [(1, first), (2, second)])
        assert await c.head(key) == (5 << 20) + 4
        assert [(o.key, o.size) for o in await c.objects("team 1/")] == [(key, (5 << 20) + 4)]
        async with c.get(key) as chunks:
            body = b"".join([chunk async for chunk in chunks])
        assert body == b"a" * (5 << 20) + b"tail"
        assert moto.read(BUCKET, key) == body  # what another client reads
        await c.put("small", b"hello")
        assert await c.head("small") == 5
        await c.delete("small")
        assert await c.head("small") is None
        aborted = await c.create_multipart("never")
        await c.upload_part("never", aborted, 1, b"x")
        await c.abort_multipart("never", aborted)
        assert moto.uploads(BUCKET) == [] and await c.head("never") is None
        await c.delete(key)
    finally:
        await c.close()


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"secret": "wrong-secret-never-shown"}, "SignatureDoesNotMatch"),
        ({"access": "AKIAUNKNOWNKEY000000"}, "InvalidAccessKeyId"),
        ({"bucket": "no-such-bucket"}, "NoSuchBucket"),
    ],
)
async def test_s3_refusals_carry_s3s_code_and_never_the_secret(moto: MotoS3, change: dict, code: str) -> None:
    c = _client(moto, **change)
    try:
        with pytest.raises(S3Error) as caught:
            await c.create_multipart("k")
    finally:
        await c.close()
    assert caught.value.code == code
    text = str(caught.value)
    assert f"S3 CreateMultipartUpload on {moto.endpoint} bucket" in text and code in text
    for secret in (moto.secret_key, "wrong-secret-never-shown"):
        assert secret not in text and secret not in repr(caught.value) and secret not in repr(c)


async def test_a_refused_connection_and_a_silent_endpoint() -> None:
    creds = Credentials("AK", "secret-never-shown")
    closed = S3Client(Bucket(f"http://127.0.0.1:{free_port()}", BUCKET), creds, timeout_s=2)
    with pytest.raises(S3Error) as refused:
        await closed.head("k")
    await closed.close()
    assert refused.value.code == "ConnectionError"
    with socket.socket() as listener:  # accepts connections and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        silent = S3Client(Bucket(f"http://127.0.0.1:{listener.getsockname()[1]}", BUCKET), creds, timeout_s=0.5)
        with pytest.raises(S3Error) as timed_out:
            await asyncio.wait_for(silent.head("k"), 10)
        await silent.close()
    assert timed_out.value.code == "Timeout"
    assert "did not answer in time" in str(timed_out.value)
    assert "secret-never-shown" not in str(refused.value) + str(timed_out.value)


async def test_a_store_the_outbound_rule_refuses_is_never_reached(moto: MotoS3) -> None:
    """With a team's policy, a store on loopback is refused before any connection (put, head and get), an
    allowed one works, and a redirect to the metadata address is not followed."""
    creds = Credentials(moto.access_key, moto.secret_key)
    refused = S3Client(Bucket(moto.endpoint, BUCKET), creds, timeout_s=5, policy=OutboundPolicy())
    try:
        for operation in (refused.put("k", b"x"), refused.head("k")):
            with pytest.raises(S3Error) as caught:
                await operation
            assert caught.value.code == "OutboundRefused"
            assert "outbound rule: 127.0.0.1 is a loopback address" in str(caught.value)
        with pytest.raises(S3Error) as caught:
            async with refused.get("k"):
                pass
        assert caught.value.code == "OutboundRefused"
    finally:
        await refused.close()
    allowed = S3Client(
        Bucket(moto.endpoint, BUCKET), creds, timeout_s=5, policy=OutboundPolicy.from_entries(["127.0.0.1"])
    )
    try:
        await allowed.put("outbound-ok", b"hello")
        assert await allowed.head("outbound-ok") == 5
    finally:
        await allowed.close()

    async def redirect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 307 X\r\nLocation: http://169.254.169.254/latest/\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(redirect, "127.0.0.1", 0)
    moved = S3Client(
        Bucket(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", BUCKET),
        creds,
        timeout_s=5,
        policy=OutboundPolicy.from_entries(["127.0.0.1"]),
    )
    try:
        with pytest.raises(S3Error) as caught:
            await moved.head("k")
        assert caught.value.code == "OutboundRefused"
        assert "redirect to http://169.254.169.254: outbound rule: 169.254.169.254 is a cloud metadata" in str(
            caught.value
        )
    finally:
        await moved.close()
        server.close()
