"""berth_common.ssh: remote commands as quoted argv, pinned host keys, clear errors, forwarded Docker sockets."""

from __future__ import annotations

import json
from collections.abc import Iterator

import aiohttp
import asyncssh
import pytest

from berth_common import ssh, ssh_keys
from tests.support.testservers import TestServer, running_servers


def test_remote_commands_are_quoted_argv() -> None:
    assert ssh.remote_command(["docker", "info", "--format", "{{.Architecture}}"]) == (
        "docker info --format '{{.Architecture}}'"
    )
    assert ssh.remote_command(["df", "-P", "-k", "/var/lib/docker; rm -rf /"]) == (
        "df -P -k '/var/lib/docker; rm -rf /'"
    )
    assert ssh.remote_command(["echo", "$(id)", "`id`", "a'b"]) == "echo '$(id)' '`id`' 'a'\"'\"'b'"
    for bad in (["echo", "a\nb"], ["echo", "a\x00"], []):
        with pytest.raises(ValueError):
            ssh.remote_command(bad)


def test_a_target_never_shows_its_key() -> None:
    private, public = ssh_keys.generate_key_pair()
    target = ssh.SshTarget("10.0.0.1", 22, "deploy", private)
    assert "PRIVATE" not in repr(target) and repr(target) == "SshTarget(deploy@10.0.0.1:22)"
    assert public.startswith("ssh-ed25519 ") and ssh_keys.public_key_of(private).split() == public.split()[:2]
    assert ssh_keys.fingerprint(public).startswith("SHA256:")
    for user in ("root;id", "-oProxyCommand=x", "a b", ""):
        with pytest.raises(ValueError):
            ssh.SshTarget("h", 22, user, private)
    with pytest.raises(ValueError):
        ssh.SshTarget("h", 0, "root", private)


@pytest.fixture(scope="module")
def server() -> Iterator[TestServer]:
    with running_servers(1) as [srv]:
        yield srv


def _target(server: TestServer, **kw: object) -> ssh.SshTarget:
    base = {
        "host": server.address,
        "port": 22,
        "user": "root",
        "private_key": server.private_key_pem,
        "host_key": server.host_key.export_public_key("openssh").decode().strip(),
    }
    return ssh.SshTarget(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.slow
async def test_first_contact_returns_the_key_to_pin(server: TestServer) -> None:
    key = await ssh.first_contact(_target(server, host_key=None))
    assert key == server.host_key.export_public_key("openssh").decode().strip()
    assert ssh_keys.fingerprint(key) == server.host_key_fingerprint
    async with await ssh.connect(_target(server, host_key=key)) as conn:
        result = await conn.run(ssh.remote_command(["docker", "info", "--format", "{{.DockerRootDir}}"]), check=True)
        assert str(result.stdout).strip() == str(server.root / "data")


@pytest.mark.slow
async def test_each_failure_is_named(server: TestServer) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode().strip()
    with pytest.raises(ssh.HostKeyChanged, match="not the one pinned"):
        await ssh.connect(_target(server, host_key=other))
    stranger, _ = ssh_keys.generate_key_pair()
    with pytest.raises(ssh.AuthenticationFailed, match="refused the key for user root"):
        await ssh.connect(_target(server, private_key=stranger))
    with pytest.raises(ssh.AuthenticationFailed):
        await ssh.first_contact(_target(server, private_key=stranger, host_key=None))
    with pytest.raises(ssh.ServerUnreachable, match="refused the connection") as refused:
        await ssh.connect(_target(server, port=2222))
    assert refused.value.how == "refused"
    with pytest.raises(ssh.ServerUnreachable) as dns:
        await ssh.connect(_target(server, host="no-such-host.invalid"))
    assert dns.value.how == "dns"
    silent = server.address.rsplit(".", 1)[0] + ".99"  # in the test's own /24, nobody there
    with pytest.raises(ssh.ServerUnreachable) as timeout:
        await ssh.connect(_target(server, host=silent), timeout=1.5)
    assert timeout.value.how in {"timeout", "network"}
    with pytest.raises(ssh.HostKeyChanged, match="validate the server first"):
        await ssh.connect(_target(server, host_key=None))


@pytest.mark.slow
async def test_the_pool_forwards_the_docker_socket_and_reconnects(server: TestServer, tmp_path) -> None:
    pool = ssh.SshPool(tmp_path / "sockets")
    try:
        target = _target(server)
        path = await pool.docker_socket("srv-1", target)
        assert path == str(tmp_path / "sockets" / "srv-1.sock")
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=path)) as http:
            async with http.get("http://docker/info") as resp:
                info = json.loads(await resp.text())
        assert info["DockerRootDir"] == str(server.root / "data")
        assert await pool.docker_socket("srv-1", target) == path  # one forward per server
        code, out, _ = await pool.run("srv-1", target, ["sh", "-c", "exit 3"])
        assert code == 3
        (await pool.connection("srv-1", target)).close()  # a dropped connection is made again
        code, out, _ = await pool.run("srv-1", target, ["echo", "$HOME; id"])
        assert (code, out) == (0, "$HOME; id\n")
        with pytest.raises(ValueError):
            await pool.docker_socket("../x", target)
    finally:
        await pool.close()
    assert not (tmp_path / "sockets").exists()


@pytest.mark.slow
async def test_a_remote_engine_is_reached_through_the_connection_factory(server: TestServer, tmp_path) -> None:
    from berth_common.docker import DockerEngines, local_engine
    from berth_common.docker.remote import connect_server

    engines = DockerEngines(local_engine(None))
    pool = ssh.SshPool(tmp_path / "sockets")
    try:
        engine = await connect_server(engines, pool, "srv-2", _target(server))
        assert engine.server_id == "srv-2" and engine.where.unix_path == str(tmp_path / "sockets" / "srv-2.sock")
        info = await engines.client("srv-2").system.info()
        assert info["DockerRootDir"] == str(server.root / "data")
        local = await engines.client().system.info()
        assert local["DockerRootDir"] != info["DockerRootDir"]
    finally:
        await engines.close()
        await pool.close()


def test_keys_are_read_and_fingerprinted_without_the_ssh_client() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    _, public = ssh_keys.generate_key_pair()
    assert ssh_keys.fingerprint(public) == str(asyncssh.import_public_key(public).get_fingerprint("sha256"))
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    assert ssh_keys.public_key_of(pem).startswith("ssh-rsa ")
    locked = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    ).decode()
    with pytest.raises(ssh_keys.KeyProblem, match="passphrase"):
        ssh_keys.public_key_of(locked)
    for garbage in ("not a key", "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----"):
        with pytest.raises(ssh_keys.KeyProblem, match="not a private key"):
            ssh_keys.public_key_of(garbage)
    with pytest.raises(ValueError):
        ssh_keys.fingerprint("ssh-ed25519")
