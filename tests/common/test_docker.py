"""The Docker connection factory: where an engine is (pure, compared exactly), and the shared clients and
streams it makes, against the real local engine and against a socket that is not there."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiohttp
import pytest
from aiodocker.exceptions import DockerError

from berth_common.docker import (
    DEFAULT_SOCKET,
    LOCAL,
    DockerEngines,
    DockerUnavailable,
    Endpoint,
    Engine,
    endpoint,
    local_engine,
    unreachable,
)


def test_where_the_engine_is():
    assert endpoint(None, {}) == Endpoint(unix_path="/var/run/docker.sock")
    assert endpoint(None, {"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}) == Endpoint(
        unix_path="/run/user/1000/docker.sock"
    )
    assert endpoint("unix:///tmp/d.sock", {"DOCKER_HOST": "tcp://elsewhere:2375"}) == Endpoint(unix_path="/tmp/d.sock")
    assert endpoint("tcp://10.0.0.5:2375", {}) == Endpoint(host="10.0.0.5", port=2375)
    assert endpoint("http://engine", {}) == Endpoint(host="engine", port=2375)
    assert endpoint(None, {"DOCKER_HOST": "tcp://engine:2375", "DOCKER_TLS_VERIFY": "0"}) == Endpoint(
        host="engine", port=2375
    )
    assert endpoint("tcp://engine", {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/nonexistent"}) == Endpoint(
        host="engine", port=2376, tls=True, cert_path="/nonexistent"
    )
    assert endpoint("https://engine:8443", {}) == Endpoint(
        host="engine", port=8443, tls=True, cert_path=str(Path.home() / ".docker")
    )
    assert endpoint("http://engine", {"DOCKER_TLS_VERIFY": "1"}) == Endpoint(host="engine", port=2375)
    for bad in ("ssh://user@host", "npipe:////./pipe/docker_engine", "tcp://", "docker.sock"):
        with pytest.raises(ValueError):
            endpoint(bad, {})


def test_an_endpoint_as_a_url_and_a_host_header():
    local = Endpoint(unix_path="/var/run/docker.sock")
    assert (local.url, local.host_header) == ("unix:///var/run/docker.sock", "docker")
    plain = Endpoint(host="10.0.0.5", port=2375)
    assert (plain.url, plain.host_header) == ("http://10.0.0.5:2375", "10.0.0.5:2375")
    tls = Endpoint(host="engine", port=2376, tls=True, cert_path="/nonexistent")
    assert (tls.url, tls.host_header) == ("https://engine:2376", "engine:2376")
    assert plain.ssl_context() is None and local.ssl_context() is None
    assert isinstance(tls.ssl_context(), ssl.SSLContext)  # no certificate files: the system's CAs


def test_an_engine_is_pinned_to_a_well_formed_api_version():
    assert local_engine(None, "v1.43", {}) == Engine(Endpoint(unix_path=DEFAULT_SOCKET), "v1.43", LOCAL)
    assert local_engine("tcp://h:1", env={}) == Engine(Endpoint(host="h", port=1), "v1.41", "local")
    for bad in ("1.41", "v1", "auto", "v1.41/", ""):
        with pytest.raises(ValueError):
            Engine(Endpoint(), bad)


def test_every_service_s_local_engine_follows_docker_host_unless_its_own_setting_names_one(monkeypatch):
    """One setting moves the platform to another engine (the chaos suite's private one, a rootless engine):
    each service that reaches the local engine makes it from its settings as its bootstrap does, and none
    of those settings has a default of its own that would hide ``DOCKER_HOST``."""
    from berth_builder.settings import BuilderSettings
    from berth_metrics.settings import MetricsSettings
    from berth_scheduler.settings import SchedulerSettings

    for key in ("BERTH_DOCKER_HOST", "BERTH_DOCKER_URL", "BERTH_METRICS_DOCKER_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/berth-private/docker.sock")
    moved = Endpoint(unix_path="/tmp/berth-private/docker.sock")
    builder, scheduler, metrics = BuilderSettings(), SchedulerSettings(), MetricsSettings()
    urls = {"builder": builder.docker_host, "scheduler": scheduler.docker_url, "metrics": metrics.metrics_docker_url}
    assert {name: local_engine(url).where for name, url in urls.items()} == dict.fromkeys(urls, moved)
    assert local_engine(None).where == moved  # proxy-sync's and the server probe's
    monkeypatch.setenv("BERTH_DOCKER_HOST", "unix:///tmp/builder-only.sock")  # a service's own setting wins
    assert local_engine(BuilderSettings().docker_host).where == Endpoint(unix_path="/tmp/builder-only.sock")


def test_engines_by_server_id():
    remote = Engine(Endpoint(unix_path="/run/berth/engines/s1.sock"), "v1.43", "s1")
    asked: list[str] = []

    def resolve(server_id: str) -> Engine | None:
        asked.append(server_id)
        return remote if server_id == "s1" else None

    engines = DockerEngines(local_engine("unix:///tmp/x.sock", env={}), resolve)
    assert engines.engine() == Engine(Endpoint(unix_path="/tmp/x.sock"), "v1.41", LOCAL)
    assert engines.engine("s1") is remote and engines.engine("s1") is remote
    assert asked == ["s1"]  # looked up once, then known
    with pytest.raises(DockerUnavailable, match="no Docker engine is known for the server 'gone'"):
        engines.engine("gone")
    with pytest.raises(DockerUnavailable):
        DockerEngines(local_engine(None, env={})).engine("s1")  # no resolver: only the local engine
    with pytest.raises(ValueError):
        DockerEngines(remote)
    with pytest.raises(ValueError):
        DockerEngines(local_engine(None, env={}), lambda sid: remote).engine("s2")  # the wrong server's engine


async def test_one_shared_client_per_engine_pinned_to_its_version():
    remote = Engine(Endpoint(host="10.9.9.9", port=2375), "v1.43", "s1")
    engines = DockerEngines(local_engine("unix:///tmp/x.sock", "v1.41", {}), lambda sid: remote)
    try:
        local = engines.client()
        assert engines.client(LOCAL) is local and local.api_version == "v1.41"
        assert local.docker_host == "unix://localhost"
        other = engines.client("s1")
        assert other is not local and other.api_version == "v1.43" and other.docker_host == "http://10.9.9.9:2375"
        await engines.close("s1")  # made again, from a fresh description, on next use
        assert engines.client("s1") is not other and engines.client() is local
    finally:
        await engines.close()
    assert engines.client() is not local  # closed: the next use makes a new client
    await engines.close()


async def test_an_added_engine_and_a_changed_description():
    engines = DockerEngines(local_engine(None, env={}))
    first = Engine(Endpoint(unix_path="/run/berth/engines/s2.sock"), "v1.41", "s2")
    await engines.add(first)
    client = engines.client("s2")
    await engines.add(first)  # the same description: the same client
    assert engines.engine("s2") is first and engines.client("s2") is client
    moved = Engine(Endpoint(unix_path="/run/berth/engines/s2-b.sock"), "v1.41", "s2")
    await engines.add(moved)  # reconnected elsewhere: a new client for the new socket
    assert engines.engine("s2") == moved and engines.client("s2") is not client
    with pytest.raises(ValueError):
        await engines.add(Engine(Endpoint(), "v1.41", LOCAL))
    await engines.close()


def test_which_errors_mean_the_engine_did_not_answer():
    assert unreachable(DockerError(900, "Cannot connect to Docker Engine"))
    assert unreachable(FileNotFoundError(2, "No such file"))
    assert unreachable(ConnectionRefusedError())
    assert unreachable(aiohttp.ServerDisconnectedError())
    assert not unreachable(DockerError(404, "No such container"))
    assert not unreachable(DockerError(500, "server error"))
    assert not unreachable(ValueError("bad"))


@pytest.mark.docker
async def test_the_local_engine_answers_through_the_factory():
    engines = DockerEngines(local_engine(None))
    try:
        version = await engines.version()
        assert version["ApiVersion"] and version["Version"]
        assert (await engines.client().version())["Version"] == version["Version"]
        reader, writer = await engines.open_stream()
        try:
            writer.write(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
            await writer.drain()
            assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"HTTP/1.1 200")
        finally:
            writer.close()
    finally:
        await engines.close()


async def free_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port


async def test_an_engine_that_never_answers_raises_docker_unavailable(tmp_path):
    silent = await asyncio.start_unix_server(lambda r, w: None, path=str(tmp_path / "silent.sock"))
    engines = DockerEngines(local_engine(f"unix://{tmp_path / 'silent.sock'}", env={}))
    try:
        with pytest.raises(DockerUnavailable, match=r"did not answer in 0\.5 s"):
            await engines.version(timeout_s=0.5)
    finally:
        await engines.close()
        silent.close()


@pytest.mark.parametrize("where", ["absent socket", "closed port"])
async def test_an_engine_that_is_not_there_raises_docker_unavailable(where, tmp_path):
    url = (
        f"unix://{tmp_path / 'no-docker.sock'}" if where == "absent socket" else f"tcp://127.0.0.1:{await free_port()}"
    )
    engines = DockerEngines(local_engine(url, env={}))
    try:
        with pytest.raises(DockerUnavailable):
            await engines.version()
        with pytest.raises(DockerUnavailable):
            await engines.open_stream()
    finally:
        await engines.close()
