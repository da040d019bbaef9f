"""The bus without its monitoring port: the platform's readiness probe asks JetStream as ``operator`` over an
authenticated connection, and the server's own reports (connections, memory) come from its system account,
never from an open HTTP port (a real nats-server on the configuration ``berth up`` writes)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import nats
import psutil
import pytest
from typer.testing import CliRunner

from berth_cli import components, nats_auth
from berth_cli.layout import infra_probes, resolve_ports
from berth_cli.main import app
from berth_cli.probes import check, nats_ready, probe_from_dict
from tests.support.procs import NatsServer, Proc, start_on_a_free_port, wait_port


class PlatformNats(NatsServer):
    """nats-server launched as the supervisor launches it: its configuration, no monitoring port."""

    def start(self, attempts: int = 3) -> PlatformNats:
        config = nats_auth.write_config(self.data_dir)

        def launch(port: int) -> None:
            self.proc = Proc(components.nats_launch(self.data_dir, port, config=config), self.data_dir / "nats.log")
            wait_port(port, proc=self.proc.start())

        self.port = start_on_a_free_port(launch, self.port, attempts)
        return self


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PlatformNats]:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    running = PlatformNats(data).start()
    yield running
    running.stop()


def _password(server: PlatformNats, identity: str) -> str:
    return nats_auth.ensure_passwords(server.data_dir)[identity]


async def _ready(server: PlatformNats, user: str, password: str, within: float = 20.0) -> bool:
    """The probe's answer once JetStream had time to start (the port opens a moment before)."""
    deadline = asyncio.get_running_loop().time() + within
    while not (ok := await nats_ready("127.0.0.1", server.port, user, password, 2.0)):
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    return ok


async def test_the_platforms_nats_probe_answers_as_operator_and_keeps_no_password(server: PlatformNats):
    ports = {**resolve_ports({}), "nats": server.port}
    probe = infra_probes(ports, "127.0.0.1", 5433, nats_auth.password_file(server.data_dir, nats_auth.OPERATOR))
    stored = json.dumps(vars(probe["nats"]))  # what supervisor.json holds and `berth status` reads back
    assert _password(server, "operator") not in stored
    assert await _ready(server, "operator", _password(server, "operator"))
    assert await check(probe_from_dict(json.loads(stored)), 2.0)
    # nats-server listens on its client port only: no monitoring port answers anyone on the host
    listening = {c.laddr.port for c in psutil.Process(server.proc.proc.pid).net_connections("inet") if not c.raddr}
    assert listening == {server.port}
    server.stop()
    assert not await check(probe_from_dict(json.loads(stored)), 2.0)


async def test_the_probe_is_refused_without_the_right_identity(server: PlatformNats):
    assert await _ready(server, "operator", _password(server, "operator"))
    assert not await nats_ready("127.0.0.1", server.port, "operator", "not-the-password", 2.0)
    assert not await nats_ready("127.0.0.1", server.port, "", "", 2.0)  # anonymous
    # observer may read events only: the JetStream API is refused to it
    assert not await nats_ready("127.0.0.1", server.port, "observer", _password(server, "observer"), 2.0)
    missing = infra_probes(resolve_ports({}), "127.0.0.1", 5433, server.data_dir / "no-such.password")["nats"]
    assert not await check(missing, 2.0)


async def test_the_system_account_reports_connections_and_memory_and_reaches_no_berth_subject(server: PlatformNats):
    assert await _ready(server, "operator", _password(server, "operator"))
    url = nats_auth.system_url(server.data_dir, server.url)
    system = await nats.connect(url, allow_reconnect=False)
    observer = await nats.connect(
        server.url,
        user="observer",
        password=_password(server, "observer"),
        inbox_prefix="_INBOX.observer",
        name="berth-observer",
        allow_reconnect=False,
    )
    try:
        seen: list[str] = []

        async def on_event(msg) -> None:
            seen.append(msg.subject)

        await observer.subscribe("evt.>", cb=on_event)
        await observer.flush()
        reply = await system.request("$SYS.REQ.SERVER.PING.CONNZ", json.dumps({"auth": True}).encode(), timeout=5)
        users = {c.get("name"): c.get("authorized_user") for c in json.loads(reply.data)["data"]["connections"]}
        assert users["berth-observer"] == "observer"
        reply = await system.request("$SYS.REQ.SERVER.PING.VARZ", b"", timeout=5)
        assert json.loads(reply.data)["data"]["mem"] > 0
        # its own account: what it publishes never reaches Berth's subjects
        await system.publish("evt.deployment.succeeded", b"{}")
        await system.flush()
        await observer.publish("_INBOX.observer.ping", b"")  # a round trip through the server
        await observer.flush()
        await asyncio.sleep(0.2)
        assert seen == []
    finally:
        await observer.close()
        await system.close()
    # the system password stays in the private folder, as the others
    assert (nats_auth.password_file(server.data_dir, nats_auth.SYSTEM).stat().st_mode & 0o777) == 0o600


def test_nats_is_launched_without_a_monitoring_port_and_with_a_tighter_heap(tmp_path: Path):
    config = tmp_path / "nats.conf"
    launch = components.nats_launch(tmp_path, 4222, config=config)
    store = str(tmp_path / "nats")
    assert launch.argv[1:] == ["-c", str(config), "-js", "-sd", store, "-a", "127.0.0.1", "-p", "4222", "-n", "berth"]
    assert launch.env == {"GOGC": "50"}  # the write caches' garbage collected sooner (benchmarks/README.md)


def test_the_running_server_has_the_launchs_environment(server: PlatformNats):
    assert psutil.Process(server.proc.proc.pid).environ().get("GOGC") == "50"


def test_berth_bus_report_asks_the_local_platforms_server_as_the_system_account(server: PlatformNats):
    """`berth bus report` without a URL: the platform's port, the data directory's system password."""
    env = {"BERTH_NATS_PORT": str(server.port), "BERTH_NATS_URL": None, "BERTH_SECRET_KEY": None}
    assert asyncio.run(_ready(server, "operator", _password(server, "operator")))
    result = CliRunner().invoke(app, ["bus", "report", "varz", "--data-dir", str(server.data_dir)], env=env)
    assert result.exit_code == 0, result.output
    (varz,) = json.loads(result.output)
    assert (varz["server"]["name"], varz["data"]["port"], varz["data"]["http_port"]) == ("berth", server.port, 0)
    assert nats_auth.password_file(server.data_dir, nats_auth.SYSTEM).read_text().strip() not in result.output
    missing = server.data_dir / "elsewhere"
    result = CliRunner().invoke(app, ["bus", "report", "connz", "--data-dir", str(missing)], env=env)
    assert result.exit_code == 2
    assert f"no system account password: {missing / 'nats-auth' / 'system.password'} is missing" in result.output
