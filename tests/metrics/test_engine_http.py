"""The metrics service's HTTP client of the Docker Engine API against the real engine, through a relay
that counts connections and can cut or refuse them. Where the engine is: tests/common/test_docker.py."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth_common.docker import DockerEngines, DockerUnavailable, local_engine
from berth_metrics.adapters.engine_http import EngineClient, EngineError
from tests.metrics.relay import Relay

pytestmark = pytest.mark.docker


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bm-http-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_answers_errors_and_kept_alive_connections(sock_dir):
    relay = await Relay(sock_dir / "docker.sock").start()
    client = EngineClient(DockerEngines(local_engine(relay.url, "v1.41")), timeout_s=10)
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
        with pytest.raises(DockerUnavailable):
            await client.get_json("version")
        await relay.start()
        assert (await client.get_json("version"))["ApiVersion"]
    finally:
        await client.close()
        await relay.stop()


async def test_an_engine_that_hangs_up_without_answering(sock_dir):
    relay = await Relay(sock_dir / "docker.sock").start()
    relay.refuse = True  # accepts, then closes at once
    client = EngineClient(DockerEngines(local_engine(relay.url, "v1.41")), timeout_s=5)
    try:
        with pytest.raises(DockerUnavailable):
            await client.get_json("version")
    finally:
        await client.close()
        await relay.stop()
