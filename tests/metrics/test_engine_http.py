"""The metrics service's HTTP client of the Docker Engine API against the real engine, through a relay
that counts connections and can cut or refuse them; and where the engine is, from URLs and environment."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth_metrics.adapters.engine_http import DockerUnavailableError, EngineClient, EngineError, endpoint
from tests.metrics.relay import Relay

pytestmark = pytest.mark.docker


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bm-http-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_where_the_engine_is():
    assert endpoint(None, {}).unix_path == "/var/run/docker.sock"
    assert (
        endpoint(None, {"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}).unix_path == "/run/user/1000/docker.sock"
    )
    tcp = endpoint("tcp://10.0.0.5:2375", {})
    assert (tcp.unix_path, tcp.host, tcp.port, tcp.tls, tcp.host_header) == (
        None,
        "10.0.0.5",
        2375,
        None,
        "10.0.0.5:2375",
    )
    assert endpoint("http://engine", {}).port == 2375
    tls = endpoint("tcp://engine", {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/nonexistent"})
    assert tls.port == 2376 and tls.tls is not None
    assert endpoint("https://engine:8443", {}).tls is not None
    for bad in ("ssh://user@host", "npipe:////./pipe/docker_engine", "tcp://"):
        with pytest.raises(ValueError):
            endpoint(bad, {})


async def test_answers_errors_and_kept_alive_connections(sock_dir):
    relay = await Relay(sock_dir / "docker.sock").start()
    client = EngineClient(endpoint(relay.url), "v1.41", timeout_s=10)
    try:
        version = await client.get_json("version")
        assert version["ApiVersion"] and isinstance(await client.get_json("containers/json"), list)
        listed = await client.get_json("containers/json", {"all": "true", "limit": "1"})
        assert isinstance(listed, list) and len(listed) <= 1
        with pytest.raises(EngineError) as missing:
            await client.get_json("containers/berth-no-such-container-x/json")
        assert missing.value.status == 404 and "no-such-container" in missing.value.message
        assert relay.accepted == 1  # four requests, one connection (the error answer kept it too)

        relay.cut()  # the engine side closed the idle connection: the next request opens a new one
        assert (await client.get_json("version"))["ApiVersion"] == version["ApiVersion"]
        assert relay.accepted == 2

        await relay.stop()
        with pytest.raises(DockerUnavailableError):
            await client.get_json("version")
        await relay.start()
        assert (await client.get_json("version"))["ApiVersion"]
    finally:
        await client.close()
        await relay.stop()


async def test_an_engine_that_hangs_up_without_answering(sock_dir):
    relay = await Relay(sock_dir / "docker.sock").start()
    relay.refuse = True  # accepts, then closes at once
    client = EngineClient(endpoint(relay.url), "v1.41", timeout_s=5)
    try:
        with pytest.raises(DockerUnavailableError):
            await client.get_json("version")
    finally:
        await client.close()
        await relay.stop()
