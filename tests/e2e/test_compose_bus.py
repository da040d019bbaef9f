"""docker-compose.yml's bus, run for real: nats-server with the command of compose's ``nats`` on the file
``berth bus config`` (``nats-config``) writes, probed by ``berth bus ready`` (``nats-ready``) and read by
``berth bus report`` as the system account's user. The file is the one ``berth up`` writes (one generator),
with every password derived from BERTH_SECRET_KEY, and no monitoring port opens."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import nats
import psutil
import pytest
from nats.errors import Error as NatsError
from nats.errors import NoServersError
from typer.testing import CliRunner

from berth_cli import components, nats_auth
from berth_cli.main import app
from berth_common.bus import Bus
from berth_common.bus.permissions import IDENTITIES, authorization
from tests.e2e.test_compose import REQUIRED, compose
from tests.support.procs import Proc, start_on_a_free_port, wait_port

SECRET = REQUIRED["BERTH_SECRET_KEY"]
CONFIG_DIR = "/etc/nats/berth"  # where compose's nats mounts the nats-config volume
STORE = "/data"  # its nats-data volume


def _nats_command() -> list[str]:
    """The ``command`` of docker-compose.yml's nats, as `docker compose config` gives it."""
    proc = compose(REQUIRED, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["services"]["nats"]["command"]


@pytest.fixture
def compose_nats(tmp_path: Path) -> Iterator[tuple[Proc, int, Path]]:
    """nats-server run as compose's nats: its command with the volumes' paths made local, on a loopback port."""
    config = tmp_path / "nats-config" / "nats.conf"
    config.parent.mkdir()
    result = CliRunner().invoke(app, ["bus", "config", str(config)], env={"BERTH_SECRET_KEY": SECRET})
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote {config}: users {', '.join((*IDENTITIES, 'system'))}\n"  # no password
    local = {f"{CONFIG_DIR}/nats.conf": str(config), STORE: str(tmp_path / "store")}
    argv = [components.bin_path("nats-server"), *(local.get(a, a) for a in _nats_command())]
    running: list[Proc] = []

    def launch(port: int) -> None:
        proc = Proc(components.Launch("nats", [*argv, "-a", "127.0.0.1", "-p", str(port)]), tmp_path / "nats.log")
        running[:] = [proc]
        wait_port(port, proc=proc.start())

    port = start_on_a_free_port(launch, components.free_port())
    yield running[0], port, config
    running[0].stop()


def test_the_generated_configuration_is_berth_ups_with_derived_passwords(compose_nats):
    _, _, config = compose_nats
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    passwords = {identity: nats_auth.derived_password(SECRET, identity) for identity in IDENTITIES}
    system = nats_auth.derived_password(SECRET, "system")
    assert len({*passwords.values(), system}) == len(IDENTITIES) + 1
    assert json.loads(config.read_text()) == {
        "authorization": authorization(passwords),
        "accounts": {"SYS": {"users": [{"user": "system", "password": system}]}},
        "system_account": "SYS",
    }
    # the one generator: byte for byte what `berth up` writes for these passwords
    assert config.read_text() == nats_auth.config_text(passwords, None, system)


def test_nats_ready_probes_as_operator_and_no_monitoring_port_opens(compose_nats):
    proc, port, _ = compose_nats
    url = f"nats://127.0.0.1:{port}"
    env = {"BERTH_SECRET_KEY": SECRET, "BERTH_NATS_URL": url}
    result = CliRunner().invoke(app, ["bus", "ready", "--timeout", "20"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output == f"nats ready: 127.0.0.1:{port}\n"
    # nats-server listens on its client port only
    listening = {c.laddr.port for c in psutil.Process(proc.proc.pid).net_connections("inet") if not c.raddr}
    assert listening == {port}
    # another secret key derives another operator password: refused, not ready
    wrong = CliRunner().invoke(app, ["bus", "ready", "--timeout", "1"], env={**env, "BERTH_SECRET_KEY": "x" * 64})
    assert wrong.exit_code == 1
    assert wrong.output == f"nats not ready after 1 s: 127.0.0.1:{port}\n"


def test_the_services_connect_with_derived_passwords_and_anonymous_clients_are_refused(compose_nats):
    _, port, _ = compose_nats
    url = f"nats://127.0.0.1:{port}"
    assert CliRunner().invoke(app, ["bus", "ready", "--url", url], env={"BERTH_SECRET_KEY": SECRET}).exit_code == 0

    async def connect() -> None:
        bus = Bus("scheduler", url, user="scheduler", password=nats_auth.derived_password(SECRET, "scheduler"))
        await bus.connect()
        await bus.close()
        with pytest.raises((NoServersError, NatsError, OSError)):
            await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, error_cb=_ignore)

    asyncio.run(connect())


def test_the_server_reports_come_from_the_system_account(compose_nats):
    _, port, _ = compose_nats
    env = {"BERTH_SECRET_KEY": SECRET, "BERTH_NATS_URL": f"nats://127.0.0.1:{port}"}
    runner = CliRunner()
    assert runner.invoke(app, ["bus", "ready"], env=env).exit_code == 0
    result = runner.invoke(app, ["bus", "report", "varz", "--wait", "0.2"], env=env)
    assert result.exit_code == 0, result.output
    (varz,) = json.loads(result.output)
    assert varz["data"]["port"] == port
    assert varz["data"]["http_port"] == 0  # the server's own word: no monitoring port
    assert varz["data"]["system_account"] == "SYS"
    assert nats_auth.derived_password(SECRET, "system") not in result.output
    # with another secret key the system user is refused; the password is not in the message
    bad = runner.invoke(app, ["bus", "report", "varz"], env={**env, "BERTH_SECRET_KEY": "x" * 64})
    assert bad.exit_code == 1
    assert "authorization violation" in bad.output.lower()
    assert nats_auth.derived_password("x" * 64, "system") not in bad.output
    refused = runner.invoke(app, ["bus", "report", "routes"], env=env)
    assert refused.exit_code == 2 and "one of varz, connz" in refused.output


async def _ignore(exc: Exception) -> None:
    """The refusal is checked by the raise."""
