"""The local platform's bus with its users (a real nats-server on the configuration ``berth up`` writes):
no anonymous client, each service publishes only what the catalogue says it produces and reads only what
it consumes."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.errors import Error as NatsError
from nats.errors import NoServersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig
from typer.testing import CliRunner

from berth_cli import components, nats_auth
from berth_cli.main import app
from berth_common.bus import Bus, Delivery
from berth_common.bus.consumer import durable_name
from berth_common.bus.permissions import IDENTITIES
from berth_common.bus.streams import CMD_STREAM, EVT_STREAM
from berth_common.catalogue import BusDeadLettered, DeploymentFailed, LogLine, StartDeployment
from tests.support.bus_helpers import wait_until
from tests.support.procs import NatsServer, Proc, start_on_a_free_port, wait_healthz, wait_port


class AuthNats(NatsServer):
    """The test fixture's server, started on the configuration the supervisor writes for ``data_dir``."""

    def start(self, attempts: int = 3) -> AuthNats:
        config = nats_auth.write_config(self.data_dir)

        def launch(port: int) -> None:
            monitor = components.free_port()
            spec = components.nats_launch(self.data_dir, port, monitor_port=monitor, config=config)
            self.proc = Proc(spec, self.data_dir / "nats.log")
            wait_port(port, proc=self.proc.start())
            wait_healthz(monitor, self.proc)

        self.port = start_on_a_free_port(launch, self.port, attempts)
        return self


@pytest.fixture
def server(tmp_path: Path) -> AsyncIterator[AuthNats]:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    running = AuthNats(data).start()
    yield running
    running.stop()


def _password(server: AuthNats, identity: str) -> str:
    return nats_auth.ensure_passwords(server.data_dir)[identity]


async def _bus(server: AuthNats, service: str) -> Bus:
    bus = Bus(service, server.url, user=service, password=_password(server, service))
    await bus.connect()
    return bus


async def _raw(server: AuthNats, identity: str, errors: list[str]) -> Any:
    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    return await nats.connect(
        server.url,
        user=identity,
        password=_password(server, identity),
        inbox_prefix=f"_INBOX.{identity}",
        error_cb=on_error,
        allow_reconnect=False,
    )


def test_the_secrets_are_private_and_the_configuration_names_every_identity(server: AuthNats):
    folder = nats_auth.auth_dir(server.data_dir)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = sorted(p.name for p in folder.iterdir())
    assert files == sorted([*(f"{i}.password" for i in (*IDENTITIES, nats_auth.SYSTEM)), "nats.conf"])
    assert all(stat.S_IMODE((folder / f).stat().st_mode) == 0o600 for f in files)
    passwords = nats_auth.ensure_passwords(server.data_dir)
    assert len(set(passwords.values())) == len(IDENTITIES)  # kept across starts, one per identity
    assert nats_auth.ensure_passwords(server.data_dir) == passwords
    assert "no_auth_user" not in nats_auth.config_path(server.data_dir).read_text()
    assert nats_auth.IDENTITIES == IDENTITIES  # the cli's list is the catalogue's


async def test_an_anonymous_client_or_a_wrong_password_is_refused(server: AuthNats):
    for credentials in ({}, {"user": "api", "password": "guess"}, {"user": "operator", "password": "x"}):
        errors: list[str] = []

        async def on_error(exc: Exception, errors: list[str] = errors) -> None:
            errors.append(str(exc))

        with pytest.raises((NoServersError, NatsError, OSError)):
            await nats.connect(
                server.url, allow_reconnect=False, max_reconnect_attempts=0, error_cb=on_error, **credentials
            )
        assert any("authorization violation" in e.lower() for e in errors), (credentials, errors)


async def test_a_service_publishes_what_it_owns_and_is_refused_the_rest(server: AuthNats):
    api = await _bus(server, "api")  # declares the streams
    notifier = await _bus(server, "notifier")
    try:
        await api.publish_raw(StartDeployment.TYPE, b"{}", {"Nats-Msg-Id": "start-1"})
        await notifier.publish(BusDeadLettered(original_subject="x", consumer="c", deliveries=1, reason="r"))
        errors: list[str] = []
        raw = await _raw(server, "notifier", errors)
        with pytest.raises(NatsTimeoutError):  # the server drops it: no stream takes it, no ack comes
            await raw.jetstream().publish("cmd.deployment.start", b"{}", timeout=1, headers={"Nats-Msg-Id": "x"})
        await raw.close()
        assert any('permissions violation for publish to "cmd.deployment.start"' in e for e in errors), errors
        assert (await api.js.stream_info(CMD_STREAM)).state.messages == 1  # the api's only
        assert (await api.js.stream_info(EVT_STREAM)).state.messages == 1  # the notifier's own event
    finally:
        await notifier.close()
        await api.close()


async def test_a_service_reads_only_what_it_consumes(server: AuthNats):
    api, scheduler, notifier = [await _bus(server, s) for s in ("api", "scheduler", "notifier")]
    got: list[str] = []

    async def on_failed(message: DeploymentFailed, delivery: Delivery) -> None:
        got.append(message.deployment_id)

    try:
        await notifier.consume(DeploymentFailed, on_failed, new_only=True)
        await scheduler.publish(DeploymentFailed(deployment_id="d1", application_id="a1", team_id="t1", reason="x"))
        await api.publish_raw(StartDeployment.TYPE, b"{}", {"Nats-Msg-Id": "start-2"})
        await wait_until(lambda: got == ["d1"], seen=lambda: got)

        errors: list[str] = []
        raw = await _raw(server, "notifier", errors)
        js = raw.jetstream(timeout=1)
        await raw.subscribe("cmd.>")  # core subscriptions to others' messages or others' inboxes
        await raw.subscribe("_INBOX.>")
        await raw.subscribe("_INBOX.scheduler.>")
        await raw.flush()
        name = durable_name("notifier", StartDeployment.TYPE)  # a consumer on a command it does not own
        config = ConsumerConfig(name=name, durable_name=name, filter_subject="cmd.>", ack_policy=AckPolicy.EXPLICIT)
        with pytest.raises(NatsTimeoutError):
            await js.add_consumer(CMD_STREAM, config)
        with pytest.raises(NatsTimeoutError):  # nor a direct read of the stream
            await js.get_last_msg(CMD_STREAM, "cmd.deployment.start")
        await raw.flush()
        await asyncio.sleep(0.2)
        await raw.close()
        violations = sorted(e for e in errors if "permissions violation" in e)
        assert violations == sorted(  # nats-py lowercases the server's message
            e.lower()
            for e in [
                'nats: permissions violation for subscription to "cmd.>"',
                'nats: permissions violation for subscription to "_INBOX.>"',
                'nats: permissions violation for subscription to "_INBOX.scheduler.>"',
                f'nats: permissions violation for publish to "$JS.API.CONSUMER.CREATE.{CMD_STREAM}.{name}.cmd.>"',
                f'nats: permissions violation for publish to "$JS.API.STREAM.MSG.GET.{CMD_STREAM}"',
            ]
        ), errors
        assert (await api.js.stream_info(CMD_STREAM)).state.messages == 1  # still there for the scheduler

        # the observer sees every event as it is published, and may send nothing
        seen: list[str] = []
        errors.clear()
        observer = await _raw(server, "observer", errors)

        async def on_event(msg: Any) -> None:
            seen.append(msg.subject)

        await observer.subscribe("evt.>", cb=on_event)
        await observer.flush()
        await scheduler.publish(DeploymentFailed(deployment_id="d3", application_id="a1", team_id="t1", reason="x"))
        await wait_until(lambda: seen == [DeploymentFailed.TYPE])
        await observer.publish("evt.deployment.failed", b"{}")
        await observer.flush()
        await asyncio.sleep(0.2)
        await observer.close()
        assert errors == ['nats: permissions violation for publish to "evt.deployment.failed"']
    finally:
        for bus in (notifier, scheduler, api):
            await bus.close()


async def test_a_log_follow_reaches_the_askers_inbox_and_the_api_reads_the_log_stream(server: AuthNats):
    """The scheduler sends a follow's lines to the inbox the api named and asks ``<inbox>.alive``; the
    api reads a deployment's lines (``log.<id>``, the builder's) with an ephemeral ordered consumer."""
    from berth_api.adapters.logstream import LogReader, last_sequence

    builder, api = await _bus(server, "builder"), await _bus(server, "api")
    errors: list[str] = []
    scheduler = await _raw(server, "scheduler", errors)
    try:
        lines: list[bytes] = []
        inbox = api.nc.new_inbox()
        assert inbox.startswith("_INBOX.api.")

        async def on_lines(msg: Any) -> None:
            lines.append(msg.data)

        async def on_alive(msg: Any) -> None:
            await msg.respond(b"")

        await api.nc.subscribe(inbox, cb=on_lines)
        await api.nc.subscribe(inbox + ".alive", cb=on_alive)
        await api.nc.flush()
        await scheduler.publish(inbox, b"line 1")
        assert (await scheduler.request(inbox + ".alive", b"", timeout=2)).data == b""
        await wait_until(lambda: lines == [b"line 1"])

        for seq in range(3):
            line = LogLine(deployment_id="d1", seq=seq, stream="build", line=f"step {seq}")
            await builder.publish(line, id=f"d1-{seq}", nats_subject="log.d1")
        assert await last_sequence(api.js, "d1") == 3
        async with LogReader(api.js, "d1") as reader:
            got = [await reader.next(timeout=5) for _ in range(3)]
        assert [e.line.line for e in got if e is not None] == ["step 0", "step 1", "step 2"]
        await asyncio.sleep(0.2)
        assert errors == []
        assert "violation" not in (server.data_dir / "nats.log").read_text().lower()
    finally:
        await scheduler.close()
        await api.close()
        await builder.close()


def test_the_cluster_configuration_gives_every_node_authenticated_routes(tmp_path: Path):
    """`berth bus config --cluster-routes` (docker-compose.cluster.yml): the same file for every node."""
    out = tmp_path / "nats.conf"
    routes = "nats-1:6222,nats-2:6222, nats-3:6222"
    env = {"BERTH_SECRET_KEY": "k" * 64}
    result = CliRunner().invoke(app, ["bus", "config", str(out), "--cluster-routes", routes], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.endswith("; cluster routes nats-1:6222, nats-2:6222, nats-3:6222\n")
    route_pw = nats_auth.derived_password("k" * 64, "route")
    assert route_pw not in result.output
    config = json.loads(out.read_text())
    assert (
        config["authorization"]
        == json.loads(nats_auth.config_text(nats_auth.derived_passwords("k" * 64)))["authorization"]
    )
    assert config["cluster"] == {
        "name": "berth",
        "listen": "0.0.0.0:6222",
        "authorization": {"user": "route", "password": route_pw},
        "routes": [f"nats-route://route:{route_pw}@nats-{i}:6222" for i in (1, 2, 3)],
    }
    system_pw = nats_auth.derived_password("k" * 64, "system")  # every node: the system account's user too
    assert config["accounts"] == {"SYS": {"users": [{"user": "system", "password": system_pw}]}}
    assert config["system_account"] == "SYS" and "http" not in config
    # without routes: no cluster section (a single server)
    CliRunner().invoke(app, ["bus", "config", str(out)], env=env)
    assert "cluster" not in json.loads(out.read_text())


def test_credentials_go_into_every_server_of_a_cluster_url():
    """`berth backup` with BERTH_NATS_URL listing a cluster's nodes connects as its user to any of them."""
    url = nats_auth.with_credentials("nats://a:4222, nats://b:4222,nats://c", "admin", "p@ss:w")
    assert url == "nats://admin:p%40ss%3Aw@a:4222,nats://admin:p%40ss%3Aw@b:4222,nats://admin:p%40ss%3Aw@c"
    assert nats_auth.without_credentials(url) == "nats://a:4222,nats://b:4222,nats://c"
