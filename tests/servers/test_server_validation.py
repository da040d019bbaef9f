"""Validating a server: the checks a person acts on, from pure facts and from real namespace servers."""

from __future__ import annotations

import pwd
import subprocess
from collections.abc import Iterator

import pytest

from berth_common import ssh, ssh_keys
from berth_scheduler.adapters.server_probe import probe
from berth_scheduler.domain import servers as dom
from tests.support.testservers import TestServer, running_servers

READY = dom.ServerFacts(
    address="10.0.0.2:22",
    host_key="ssh-ed25519 AAAA",
    fingerprint="SHA256:abc",
    socket_present=True,
    socket_usable=True,
    docker_version="20.10.24+dfsg1",
    api_version="1.41",
    architecture="x86_64",
    docker_root="/var/lib/docker",
    free_bytes=10 * 1024**3,
)


def _names(v: dom.ServerValidation) -> list[tuple[str, bool]]:
    return [(c.name, c.ok) for c in v.checks]


def test_commands_are_exact_argv() -> None:
    assert dom.socket_commands() == (
        ["test", "-S", "/var/run/docker.sock"],
        ["test", "-w", "/var/run/docker.sock"],
    )
    assert dom.disk_command("/srv/docker data") == ["df", "-P", "-k", "/srv/docker data"]


def test_df_output_is_read_in_bytes() -> None:
    out = "Filesystem     1024-blocks      Used Available Capacity Mounted on\n/dev/vda 263174212 23000000 83886080 22% /\n"
    assert dom.parse_df(out) == 83886080 * 1024
    assert dom.parse_df("") is None
    assert dom.parse_df("Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/vda x y z 1% /\n") is None


def test_a_good_server_is_ready() -> None:
    v = dom.evaluate(READY)
    assert v.state == "ready" and v.reason == ""
    assert _names(v) == [
        ("reachable", True),
        ("authentication", True),
        ("host_key", True),
        ("docker", True),
        ("docker_socket", True),
        ("docker_version", True),
        ("disk", True),
    ]
    assert v.architecture == "amd64"
    assert v.checks[5].detail == "Docker 20.10.24+dfsg1 (API 1.41) on amd64"
    assert v.checks[6].detail == "10.0 GiB free on /var/lib/docker"


@pytest.mark.parametrize(
    ("kind", "check"),
    [("unreachable", "reachable"), ("authentication", "authentication"), ("host_key_changed", "host_key")],
)
def test_a_server_not_reached_names_why(kind: str, check: str) -> None:
    facts = dom.ServerFacts(address="h:22", connect_error="the reason", error_kind=kind)  # type: ignore[arg-type]
    v = dom.evaluate(facts)
    assert (v.state, _names(v), v.reason) == ("unreachable", [(check, False)], "the reason")


def test_each_way_a_reached_server_cannot_serve() -> None:
    no_docker = dom.evaluate(dom.ServerFacts(address="h:22", host_key="k", fingerprint="f"))
    assert no_docker.state == "invalid"
    assert no_docker.reason == "no Docker engine: /var/run/docker.sock does not exist; install Docker"
    unchecked = dom.evaluate(dom.ServerFacts(address="h:22", socket_check_error="exit -1"))
    assert (unchecked.state, unchecked.reason) == (
        "invalid",
        "could not look for the Docker socket at /var/run/docker.sock (exit -1)",
    )
    denied = dom.evaluate(dom.ServerFacts(address="h:22", socket_present=True))
    assert denied.reason == (
        "this user may not use the Docker socket (permission denied): connect as root or add the user to the "
        "docker group"
    )
    old = dom.evaluate(dom.ServerFacts(**{**READY.__dict__, "docker_version": "19.03.15"}))
    assert (old.state, old.reason) == ("invalid", "Docker 19.03.15 is older than 20.10: upgrade the engine")
    full = dom.evaluate(dom.ServerFacts(**{**READY.__dict__, "free_bytes": 512 * 1024**2}))
    assert full.reason == "only 0.5 GiB free on /var/lib/docker: at least 2.0 GiB needed"
    unread = dom.evaluate(dom.ServerFacts(**{**READY.__dict__, "free_bytes": None, "disk_error": "df: no such"}))
    assert unread.reason == "free disk space could not be read: df: no such"


# --- against namespace servers ----------------------------------------------------------------------

NO_DOCKER_USER = "berth-test-nodocker"


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[TestServer, TestServer]]:
    try:
        pwd.getpwnam(NO_DOCKER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--shell", "/bin/sh", "-p", "*", NO_DOCKER_USER], check=True)
    with running_servers(1) as [with_docker], running_servers(1, with_docker=False) as [without]:
        yield with_docker, without


def _target(server: TestServer, user: str = "root", host_key: str | None = None) -> ssh.SshTarget:
    return ssh.SshTarget(server.address, 22, user, server.private_key_pem, host_key)


@pytest.mark.slow
async def test_a_real_server_validates_ready_and_pins_its_key(servers, tmp_path) -> None:
    server, _ = servers
    pool = ssh.SshPool(tmp_path / "s")
    try:
        facts = await probe(pool, "one", _target(server))
    finally:
        await pool.close()
    v = dom.evaluate(facts)
    assert v.state == "ready", v.checks
    assert v.fingerprint == server.host_key_fingerprint
    assert v.host_key == server.host_key.export_public_key("openssh").decode().strip()
    assert v.docker_version and v.architecture in {"amd64", "arm64"}
    assert v.free_bytes and v.free_bytes > 0


@pytest.mark.slow
async def test_real_failures_are_named(servers, tmp_path) -> None:
    server, without = servers
    pool = ssh.SshPool(tmp_path / "s")
    try:
        no_engine = dom.evaluate(await probe(pool, "a", _target(without)))
        assert (no_engine.state, no_engine.checks[-1].name) == ("invalid", "docker")
        denied = dom.evaluate(await probe(pool, "b", _target(server, NO_DOCKER_USER)))
        assert (denied.state, denied.checks[-1].name) == ("invalid", "docker_socket")
        other_key = ssh_keys.generate_key_pair()[1]
        changed = dom.evaluate(await probe(pool, "c", _target(server, host_key=other_key)))
        assert (changed.state, changed.checks[0].name) == ("unreachable", "host_key")
        refused = dom.evaluate(
            await probe(pool, "d", ssh.SshTarget(server.address, 2222, "root", server.private_key_pem))
        )
        assert refused.state == "unreachable" and "refused the connection" in refused.reason
    finally:
        await pool.close()
