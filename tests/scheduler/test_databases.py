"""One-click databases on a real scheduler and Docker: PostgreSQL, MariaDB and Redis from the local images.

Each test runs the scheduler in-process on a fresh bus and database, sends the api's commands and reads
``evt.database.*``; an "application" container on the team's network reaches the database by its private
host name with the connection URL a link would give it. Stop and start keep the data (the volume), a
rotation changes the password (the old one stops working), and no password appears in an event or in
the scheduler's output.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import nats
import pytest

from berth_common import dbengines
from berth_common.bus import Bus, subscriptions_confirmed
from berth_common.catalogue import (
    DatabaseSpec,
    RemoveDatabase,
    RestartDatabase,
    RotateDatabaseCredentials,
    RunDatabase,
    StartDatabase,
    StopDatabase,
)
from berth_scheduler.settings import SchedulerSettings
from tests.support import images

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@dataclass
class Rig:
    """The scheduler, an api stand-in publishing commands, and every ``evt.database.*`` event seen."""

    api: Bus
    nc: Any
    raw: list[bytes] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def send(self, command: Any) -> str:
        await self.api.publish(command)
        return str(command.request_id)

    async def wait(self, request_id: str, type_: str = "evt.database.changed", timeout: float = 180) -> dict[str, Any]:
        """The final answer to ``request_id`` (``starting`` is not one)."""

        def found() -> dict[str, Any] | None:
            for e in self.events:
                data = e["data"]
                if e["type"] == type_ and data["request_id"] == request_id and data.get("state") != "starting":
                    return data
            return None

        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(found), timeout)
        got = found()
        assert got is not None
        return got

    def states(self, request_id: str) -> list[str]:
        return [
            e["data"]["state"]
            for e in self.events
            if e["type"] == "evt.database.changed" and e["data"]["request_id"] == request_id
        ]


@contextlib.asynccontextmanager
async def scheduler_rig(nats_url: str, settings: SchedulerSettings) -> AsyncIterator[Rig]:
    """A scheduler process with ``settings`` and an api-side bus connection that records every
    ``evt.database.*`` event."""
    from tests.scheduler.platform import Scheduler

    scheduler = Scheduler(settings)
    nc = await nats.connect(nats_url)
    api = Bus("api", nats_url)
    rig = Rig(api, nc)

    async def on_evt(msg: Any) -> None:
        async with rig.changed:
            rig.raw.append(msg.data)
            rig.events.append(json.loads(msg.data))
            rig.changed.notify_all()

    await nc.subscribe("evt.database.>", cb=on_evt)
    await subscriptions_confirmed(nc)
    await scheduler.start()
    for _ in range(100):
        try:
            await api.connect()
            break
        except Exception:
            await asyncio.sleep(0.1)
    try:
        yield rig
    finally:
        with contextlib.suppress(Exception):
            await scheduler.stop()
        await api.close()
        await nc.close()


@contextlib.asynccontextmanager
async def mapped_rig(
    nats_server: Any, database: Any, image_map: dict[str, str], ready_timeout_s: float
) -> AsyncIterator[Rig]:
    """A scheduler whose image map sends the official names to images a test made (another release, a broken
    one), with the time a database has to get ready."""
    from berth_common.db.provision import provision

    urls = await provision(database, "test-secret", ("scheduler",))
    settings = SchedulerSettings(
        nats_url=nats_server.url,
        database_url=urls["scheduler"],
        secret_key="test-secret",
        http_port=0,
        image_map=json.dumps(image_map),
        database_ready_timeout_s=ready_timeout_s,
    )
    async with scheduler_rig(nats_server.url, settings) as made:
        yield made


@pytest.fixture
async def rig(nats_server, database, unique) -> AsyncIterator[Rig]:
    from berth_common.db.provision import provision

    urls = await provision(database, "test-secret", ("scheduler",))
    settings = SchedulerSettings(
        nats_url=nats_server.url, database_url=urls["scheduler"], secret_key="test-secret", http_port=0
    )
    async with scheduler_rig(nats_server.url, settings) as made:
        yield made


@dataclass
class Made:
    """What one test's database made on the engine, removed at the end."""

    team_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    database_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def container(self) -> str:
        return dbengines.container_name(self.database_id)

    @property
    def network(self) -> str:
        return dbengines.team_network(self.team_id)

    def cleanup(self) -> None:
        subprocess.run([images.DOCKER, "rm", "-f", self.container], capture_output=True, check=False)
        subprocess.run([images.DOCKER, "volume", "rm", dbengines.volume_name(self.database_id)], capture_output=True)
        subprocess.run([images.DOCKER, "network", "rm", self.network], capture_output=True, check=False)


@pytest.fixture
def made() -> Any:
    m = Made()
    yield m
    m.cleanup()


def spec_of(made: Made, engine: str, version: str, password: str, **extra: Any) -> DatabaseSpec:
    creds = dbengines.generate_credentials(engine, "orders")
    return DatabaseSpec(
        database_id=made.database_id,
        team_id=made.team_id,
        name="orders",
        engine=engine,
        version=version,
        image=dbengines.engine(engine).image(version),
        user=creds.user,
        password=password,
        database=creds.database,
        **extra,
    )


def app(image: str, network: str, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """A throwaway "application" container on ``network`` running ``argv`` with ``env``."""
    flags = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
    cmd = [images.DOCKER, "run", "--rm", "--label", images.TEST_LABEL, "--network", network, *flags]
    return subprocess.run([*cmd, "--entrypoint", argv[0], image, *argv[1:]], capture_output=True, text=True, timeout=90)


def url(spec: DatabaseSpec, password: str) -> str:
    creds = dbengines.Credentials(spec.user, password, spec.database)
    return dbengines.connection_url(spec.engine, creds, dbengines.container_name(spec.database_id))


def rid() -> str:
    return uuid.uuid4().hex


def no_secret_anywhere(rig: Rig, capfd: pytest.CaptureFixture[str], *secrets: str) -> None:
    out, err = capfd.readouterr()
    for secret in secrets:
        assert all(secret.encode() not in raw for raw in rig.raw)
        assert secret not in out and secret not in err


async def test_postgresql_runs_keeps_data_and_rotates(rig: Rig, made: Made, capfd):
    images.postgres_image()
    old, new = "old-" + uuid.uuid4().hex, "new'/@:" + uuid.uuid4().hex
    spec = spec_of(made, "postgresql", "15", old, limits={"memory_mb": 512, "cpus": 1.0})
    run = await rig.send(RunDatabase(request_id=rid(), spec=spec))
    answer = await rig.wait(run)
    assert answer["state"] == "running", answer
    assert answer["host"] == made.container and answer["port"] is None
    assert rig.states(run) == ["starting", "running"]

    inspected = json.loads(images.docker("inspect", made.container))[0]
    assert inspected["Config"]["Image"] == "berth/postgres:15-bookworm"  # the image map's local stand-in
    assert inspected["HostConfig"]["Memory"] == 512 * 1024 * 1024
    assert inspected["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert made.container in inspected["NetworkSettings"]["Networks"][made.network]["Aliases"]
    volume = json.loads(images.docker("volume", "inspect", dbengines.volume_name(made.database_id)))[0]
    assert volume["Labels"]["berth.team"] == made.team_id
    assert volume["Labels"]["berth.app"] == made.database_id
    assert volume["Labels"]["berth.volume"] == "data"

    psql = ["sh", "-c", 'psql "$DATABASE_URL" -tAc "$SQL"']
    link = {"DATABASE_URL": url(spec, old)}
    got = app(
        images.postgres_image(),
        made.network,
        {**link, "SQL": "CREATE TABLE t (x int); INSERT INTO t VALUES (42)"},
        *psql,
    )
    assert got.returncode == 0, got.stderr

    stop = await rig.send(StopDatabase(request_id=rid(), database_id=made.database_id, team_id=made.team_id))
    assert (await rig.wait(stop))["state"] == "stopped"
    assert json.loads(images.docker("inspect", made.container))[0]["State"]["Running"] is False
    start = await rig.send(StartDatabase(request_id=rid(), spec=spec))
    assert (await rig.wait(start))["state"] == "running"
    got = app(images.postgres_image(), made.network, {**link, "SQL": "SELECT x FROM t"}, *psql)
    assert got.stdout.strip() == "42", got.stderr

    rotate = await rig.send(RotateDatabaseCredentials(request_id=rid(), spec=spec, new_password=new))
    assert (await rig.wait(rotate, "evt.database.credentials_rotated"))["outcome"] == "succeeded"
    assert (await rig.wait(rotate))["state"] == "running"
    got = app(images.postgres_image(), made.network, {"DATABASE_URL": url(spec, new), "SQL": "SELECT x FROM t"}, *psql)
    assert got.stdout.strip() == "42", got.stderr
    got = app(images.postgres_image(), made.network, {**link, "SQL": "SELECT 1"}, *psql)
    assert got.returncode != 0 and "password authentication failed" in got.stderr

    # the same rotation again (a redelivery after a crash): the new password is already set, it succeeds
    again = await rig.send(RotateDatabaseCredentials(request_id=rid(), spec=spec, new_password=new))
    assert (await rig.wait(again, "evt.database.credentials_rotated"))["outcome"] == "succeeded"

    rotated = spec.model_copy(update={"password": spec.password.__class__(new)})
    restart = await rig.send(RestartDatabase(request_id=rid(), spec=rotated))
    assert (await rig.wait(restart))["state"] == "running"

    remove = await rig.send(RemoveDatabase(request_id=rid(), database_id=made.database_id, team_id=made.team_id))
    removed = await rig.wait(remove)
    assert removed["state"] == "removed" and removed["volume_kept"] is True
    assert subprocess.run([images.DOCKER, "inspect", made.container], capture_output=True).returncode != 0
    images.docker("volume", "inspect", dbengines.volume_name(made.database_id))  # kept
    gone = await rig.send(
        RemoveDatabase(request_id=rid(), database_id=made.database_id, team_id=made.team_id, keep_volume=False)
    )
    assert (await rig.wait(gone))["volume_kept"] is False
    volumes = images.docker("volume", "ls", "-q", "--filter", f"name={dbengines.volume_name(made.database_id)}")
    assert volumes == ""
    no_secret_anywhere(rig, capfd, old, new)


async def test_mariadb_runs_keeps_data_and_rotates(rig: Rig, made: Made, capfd):
    images.mariadb_image()
    old, new = "old-" + uuid.uuid4().hex, "new-" + uuid.uuid4().hex
    spec = spec_of(made, "mariadb", "10.11", old, config={"max_connections": "50"})
    run = await rig.send(RunDatabase(request_id=rid(), spec=spec))
    assert (await rig.wait(run))["state"] == "running"

    def sql(password: str, query: str) -> subprocess.CompletedProcess[str]:
        parsed = urllib.parse.urlsplit(url(spec, password))
        env = {"MYSQL_PWD": urllib.parse.unquote(parsed.password or ""), "Q": query}
        login = f"-h {parsed.hostname} -P {parsed.port} -u {parsed.username} {parsed.path.lstrip('/')}"
        return app(images.mariadb_image(), made.network, env, "sh", "-c", f'mariadb {login} -N -e "$Q"')

    got = sql(old, "CREATE TABLE t (x int); INSERT INTO t VALUES (7); SELECT @@max_connections")
    assert got.returncode == 0 and got.stdout.strip() == "50", got.stderr
    stop = await rig.send(StopDatabase(request_id=rid(), database_id=made.database_id, team_id=made.team_id))
    assert (await rig.wait(stop))["state"] == "stopped"
    start = await rig.send(StartDatabase(request_id=rid(), spec=spec))
    assert (await rig.wait(start))["state"] == "running"
    assert sql(old, "SELECT x FROM t").stdout.strip() == "7"

    rotate = await rig.send(RotateDatabaseCredentials(request_id=rid(), spec=spec, new_password=new))
    assert (await rig.wait(rotate, "evt.database.credentials_rotated"))["outcome"] == "succeeded"
    assert sql(new, "SELECT x FROM t").stdout.strip() == "7"
    refused = sql(old, "SELECT 1")
    assert refused.returncode != 0 and "Access denied" in refused.stderr
    no_secret_anywhere(rig, capfd, old, new)


async def test_redis_runs_keeps_data_and_rotates(rig: Rig, made: Made, capfd):
    images.redis_image()
    old, new = "old-" + uuid.uuid4().hex, "new-" + uuid.uuid4().hex
    spec = spec_of(made, "redis", "7", old)
    run = await rig.send(RunDatabase(request_id=rid(), spec=spec))
    assert (await rig.wait(run))["state"] == "running"

    def cli(password: str, *argv: str) -> subprocess.CompletedProcess[str]:
        script = 'redis-cli --no-auth-warning -u "$REDIS_URL" "$@"'
        return app(
            images.redis_image(), made.network, {"REDIS_URL": url(spec, password)}, "sh", "-c", script, "sh", *argv
        )

    assert cli(old, "set", "k", "kept").stdout.strip() == "OK"
    stop = await rig.send(StopDatabase(request_id=rid(), database_id=made.database_id, team_id=made.team_id))
    assert (await rig.wait(stop))["state"] == "stopped"
    start = await rig.send(StartDatabase(request_id=rid(), spec=spec))
    assert (await rig.wait(start))["state"] == "running"
    assert cli(old, "get", "k").stdout.strip() == "kept"

    rotate = await rig.send(RotateDatabaseCredentials(request_id=rid(), spec=spec, new_password=new))
    assert (await rig.wait(rotate, "evt.database.credentials_rotated"))["outcome"] == "succeeded"
    assert cli(new, "get", "k").stdout.strip() == "kept"
    assert "WRONGPASS" in (cli(old, "get", "k").stdout + cli(old, "get", "k").stderr)
    no_secret_anywhere(rig, capfd, old, new)


async def test_a_database_that_cannot_start_fails_with_a_reason(rig: Rig, made: Made, capfd):
    """An image the server does not have and cannot pull: ``failed`` with the engine's reason, no password."""
    secret = "pw-" + uuid.uuid4().hex
    spec = spec_of(made, "postgresql", "13", secret)  # no local image for 13 and no registry here
    run = await rig.send(RunDatabase(request_id=rid(), spec=spec))
    answer = await rig.wait(run, timeout=300)
    assert answer["state"] == "failed" and "postgres:13" in answer["reason"]
    no_secret_anywhere(rig, capfd, secret)


async def test_a_linked_application_deployed_by_the_scheduler_reaches_the_database(rig: Rig, made: Made, nats_server):
    """The api's snapshot of a linked application (the URL a secret variable, the team's network): its
    container, made by the ordinary rollout, reaches the database by its private host name."""
    from berth_common.catalogue import StartDeployment
    from tests.scheduler.conftest import remove_labelled

    image = images.redis_image()
    password = "pw-" + uuid.uuid4().hex
    spec = spec_of(made, "redis", "7", password)
    assert (await rig.wait(await rig.send(RunDatabase(request_id=rid(), spec=spec))))["state"] == "running"

    outcomes: list[dict[str, Any]] = []

    async def on_deployment(msg: Any) -> None:
        outcomes.append(json.loads(msg.data))

    await rig.nc.subscribe("evt.deployment.>", cb=on_deployment)
    await subscriptions_confirmed(rig.nc)
    app_id, deployment_id = f"test-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    script = 'redis-cli --no-auth-warning -u "$REDIS_URL" set linked yes && exec sleep 3600'
    app_spec = {
        "name": "linked",
        "source": {"kind": "image", "image": image, "pull_policy": "if-missing"},
        "services": [{"kind": "worker", "name": "worker", "command": ["sh", "-c", script]}],
        "env": [{"name": "REDIS_URL", "value": url(spec, password), "secret": True}],
        "network": made.network,
    }
    command = StartDeployment(deployment_id=deployment_id, application_id=app_id, team_id=made.team_id, spec=app_spec)
    try:
        await rig.api.publish(command)
        deadline = asyncio.get_running_loop().time() + 120
        while not any(o["type"] in ("evt.deployment.succeeded", "evt.deployment.failed") for o in outcomes):
            assert asyncio.get_running_loop().time() < deadline, outcomes
            await asyncio.sleep(0.1)
        assert [o["type"] for o in outcomes if o["type"] != "evt.deployment.progressed"] == ["evt.deployment.succeeded"]
        got = subprocess.run(
            [images.DOCKER, "exec", "-e", f"REDISCLI_AUTH={password}", made.container, "redis-cli", "get", "linked"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert got.stdout.strip() == "yes", got
    finally:
        remove_labelled(f"berth.app={app_id}")


def test_the_container_body_is_exact_data():
    """What the executor posts for a database, compared whole: env, volume, network alias, limits, labels."""
    from berth_scheduler.domain import databases as dom

    team, db = "a" * 32, "b" * 32
    spec = DatabaseSpec(
        database_id=db,
        team_id=team,
        name="orders",
        engine="postgresql",
        version="15",
        image="postgres:15",
        user="orders",
        password="pw",
        database="orders",
        config={"max_connections": "50"},
        limits={"cpus": 0.5, "memory_mb": 256},
        public={"port": 15432, "allow": ["0.0.0.0/0"]},
    )
    made = dom.container(spec, "berth/postgres:15-bookworm")
    owner = {"berth.team": team, "berth.app": db, "berth.managed": "true", "berth.kind": "database"}
    assert made.volume_body == {"Name": f"berth-db-{db}-data", "Labels": {**owner, "berth.volume": "data"}}
    assert made.body == {
        "Image": "berth/postgres:15-bookworm",
        "Env": ["POSTGRES_USER=orders", "POSTGRES_PASSWORD=pw", "POSTGRES_DB=orders"],
        "Cmd": ["-c", "max_connections=50"],
        "Labels": {**owner, "berth.database-spec": made.digest},
        "ExposedPorts": {"5432/tcp": {}},
        "StopTimeout": 60,
        "Healthcheck": {
            "Test": ["CMD", "pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432", "-U", "orders", "-d", "orders"],
            "Interval": 10_000_000_000,
            "Timeout": 5_000_000_000,
            "Retries": 3,
            "StartPeriod": 60_000_000_000,
        },
        "HostConfig": {
            "RestartPolicy": {"Name": "unless-stopped"},
            "Init": True,
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
            "Mounts": [{"Type": "volume", "Source": f"berth-db-{db}-data", "Target": "/var/lib/postgresql/data"}],
            "NanoCpus": 500_000_000,
            "Memory": 256 * 1024 * 1024,
            "PortBindings": {"5432/tcp": [{"HostIp": "0.0.0.0", "HostPort": "15432"}]},
        },
        "NetworkingConfig": {"EndpointsConfig": {f"berth-team-{team}": {"Aliases": [f"berth-db-{db}"]}}},
    }
    assert made.published and dom.exposure_note(spec) == ""
    # another password or configuration makes another container; a remote server's network is its Berth network
    assert dom.container(spec, "berth/postgres:15-bookworm", "other").digest != made.digest
    remote = spec.model_copy(update={"server_id": "c" * 32})
    assert dom.container(remote, "postgres:15").network == "berth"
    narrow = spec.model_copy(update={"public": spec.public.model_copy(update={"allow": ["203.0.113.0/24"]})})
    assert "PortBindings" not in dom.container(narrow, "x").body["HostConfig"] and dom.exposure_note(narrow)


async def test_a_public_database_admitting_everyone_is_reached_on_its_published_port(rig: Rig, made: Made):
    from berth_cli.components import free_port

    images.redis_image()
    password, port = "pw-" + uuid.uuid4().hex, free_port()
    spec = spec_of(made, "redis", "7", password, public={"port": port, "allow": ["0.0.0.0/0"]})
    answer = await rig.wait(await rig.send(RunDatabase(request_id=rid(), spec=spec)))
    assert answer["state"] == "running" and answer["port"] == port and answer["reason"] == ""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"AUTH {password}\r\nPING\r\n".encode())
    await writer.drain()
    got = await asyncio.wait_for(reader.readuntil(b"PONG\r\n"), 10)
    writer.close()
    assert got == b"+OK\r\n+PONG\r\n"


async def test_a_database_on_another_server_runs_there_with_the_image_streamed_to_it(rig: Rig, made: Made):
    """A remote server (a namespace test server with its own dockerd and sshd), reached through the connection
    factory: the local image is streamed to it (no registry), the database joins its Berth network."""
    from berth_common import sealing
    from berth_common.catalogue import ServerChanged, sealed_key_aad
    from tests.support.testservers import running_servers

    images.redis_image()
    password, server_id = "pw-" + uuid.uuid4().hex, uuid.uuid4().hex
    with running_servers(1) as (server,):
        changed = ServerChanged(
            server_id=server_id,
            team_id=made.team_id,
            name="edge",
            host=server.address,
            private_key=sealing.seal(server.private_key_pem, sealed_key_aad(server_id)),
            host_key=server.host_key.export_public_key("openssh").decode().strip(),
            state="ready",
            revision=1,
        )
        await rig.api.publish(changed)
        spec = spec_of(made, "redis", "7", password, server_id=server_id)
        for _ in range(20):  # the server's announcement and the command travel on different consumers
            answer = await rig.wait(await rig.send(RunDatabase(request_id=rid(), spec=spec)), timeout=300)
            if "not known to the scheduler" not in answer["reason"]:
                break
            await asyncio.sleep(0.5)
        assert answer["state"] == "running", answer

        def remote(*argv: str) -> subprocess.CompletedProcess[str]:
            cmd = [images.DOCKER, "-H", server.docker_host, *argv]
            return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

        inspected = json.loads(remote("inspect", made.container).stdout)[0]
        assert made.container in inspected["NetworkSettings"]["Networks"]["berth"]["Aliases"]
        got = remote("exec", "-e", f"REDISCLI_AUTH={password}", made.container, "redis-cli", "ping")
        assert got.stdout.strip() == "PONG", got
        assert subprocess.run([images.DOCKER, "inspect", made.container], capture_output=True).returncode != 0
        gone = RemoveDatabase(
            request_id=rid(), database_id=made.database_id, team_id=made.team_id, server_id=server_id, keep_volume=False
        )
        assert (await rig.wait(await rig.send(gone)))["state"] == "removed"
        assert remote("volume", "ls", "-q").stdout.strip() == ""


async def test_a_rotation_the_engine_refuses_changes_nothing(rig: Rig, made: Made, capfd):
    """Logged in with a password that is not the database's: ``failed`` with the engine's reason, no state
    change for that request, and the real password still works."""
    images.redis_image()
    password, new = "pw-" + uuid.uuid4().hex, "new-" + uuid.uuid4().hex
    spec = spec_of(made, "redis", "7", password)
    assert (await rig.wait(await rig.send(RunDatabase(request_id=rid(), spec=spec))))["state"] == "running"
    wrong = spec.model_copy(update={"password": spec.password.__class__("not-" + password)})
    request = await rig.send(RotateDatabaseCredentials(request_id=rid(), spec=wrong, new_password=new))
    answer = await rig.wait(request, "evt.database.credentials_rotated")
    assert answer["outcome"] == "failed" and "refused the password change" in answer["reason"]
    assert rig.states(request) == []
    got = subprocess.run(
        [images.DOCKER, "exec", "-e", f"REDISCLI_AUTH={password}", made.container, "redis-cli", "ping"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert got.stdout.strip() == "PONG"
    no_secret_anywhere(rig, capfd, password, new, "not-" + password)
