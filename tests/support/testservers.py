"""Test servers: network namespaces that behave as remote hosts, each with its own address, dockerd and sshd.

A test server is reached only at the address the tests gave it, inside a /24 the tests made (``10.77.N.0``
on a bridge of ours, N chosen under a machine-wide lock so parallel workers never share one); servers on
one network reach each other (a Swarm's nodes do). Its sshd runs in a mount namespace whose ``/run``
is a directory of the server's own, where ``docker.sock`` leads to that server's engine, so
``ssh root@ADDR docker ps`` lists only its containers, as on a real machine. The whole ``/run`` is
replaced, not the one socket file: a mount on the machine's own ``/run/docker.sock`` is undone by the
kernel when the machine's engine restarts and removes that file (and so is one on the server's socket
when the server's engine restarts), after which the server's sessions would reach the machine's engine. Everything is torn down by pid and ``ip netns del``.

The recipe is the one verified on these machines (shared/REFERENCE.md): ``nsenter --net`` (``ip netns exec``
remounts /sys and dockerd then fails), sshd with ``AllowStreamLocalForwarding yes``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import asyncssh

from berth_common import sealing, ssh
from berth_common.catalogue import ServerChanged, sealed_key_aad

LOCK = Path("/tmp/berth-testservers.lock")
NET_PREFIX = "10.77"
SSHD = "/usr/sbin/sshd"
FILLER = "berth-test-filler"  # the file that fills a server's disk (TestServer.fill_disk)


def _run(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} {' '.join(argv[1:4])} failed: {proc.stderr.strip()[-500:]}")
    return proc


@contextlib.contextmanager
def _machine_lock() -> Iterator[None]:
    with LOCK.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _used_subnets() -> set[int]:
    out = _run("ip", "-o", "-4", "addr", "show").stdout
    used = set()
    for line in out.splitlines():
        for word in line.split():
            if word.startswith(NET_PREFIX + "."):
                used.add(int(word.split(".")[2]))
    return used


def _netns_exists(name: str) -> bool:
    return Path("/var/run/netns", name).exists()


@dataclass
class TestServer:
    """One namespace server. ``address`` is its own; ``gateway`` is the main namespace's end of the link."""

    __test__ = False  # not a pytest class

    name: str
    subnet: int
    host: int
    root: Path
    client_key: asyncssh.SSHKey
    host_key: asyncssh.SSHKey
    pids: dict[str, int] = field(default_factory=dict)
    insecure_registries: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        return f"{NET_PREFIX}.{self.subnet}.{self.host}"

    @property
    def gateway(self) -> str:
        return f"{NET_PREFIX}.{self.subnet}.1"

    @property
    def docker_sock(self) -> Path:
        return self.root / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.docker_sock}"

    @property
    def private_key_pem(self) -> str:
        return self.client_key.export_private_key("openssh").decode()

    @property
    def host_key_fingerprint(self) -> str:
        return str(self.host_key.get_fingerprint("sha256"))

    def ssh_target(self, port: int = 22, user: str = "root") -> ssh.SshTarget:
        """How Berth reaches this server: its address, root with the tests' client key, its host key pinned."""
        host_key = self.host_key.export_public_key("openssh").decode().strip()
        return ssh.SshTarget(self.address, port, user, self.private_key_pem, host_key)

    def docker(self, *args: str, timeout: float = 120) -> str:
        """The docker CLI against this server's engine (tests only; Berth itself speaks the Engine API)."""
        return _run("docker", "-H", self.docker_host, *args, timeout=timeout).stdout

    def load_image(self, tag: str) -> None:
        """Copy a local image to this server (``docker save | docker load``), skipped when it is there."""
        load_image(self.docker_host, tag, self.name)

    def replace_host_key(self, key: asyncssh.SSHKey) -> None:
        """The server is reinstalled: sshd restarts with a new host key."""
        self.host_key = key
        pid = self.pids.pop("sshd", None)
        if pid:
            _signal_in(self.name, pid, signal.SIGTERM)
            _wait(lambda: not _port_open(self.address, 22), f"{self.name} sshd stop")
        (self.root / "sshd.pid").unlink(missing_ok=True)
        _start_sshd(self, f"/var/run/netns/{self.name}")

    def authorize(self, public_key: str) -> None:
        """Install a public key in the server's authorized_keys."""
        with (self.root / "authorized_keys").open("a") as f:
            f.write(public_key.strip() + "\n")

    def crash(self) -> None:
        """The machine dies: every process in its namespace (engine, containers, sshd) gets SIGKILL."""
        self.pids.clear()
        for pid in _run("ip", "netns", "pids", self.name, check=False).stdout.split():
            if pid.isdigit():
                _signal_in(self.name, int(pid), signal.SIGKILL)

    def stop_dockerd(self) -> None:
        """Kill this server's engine (SIGKILL, like a crash); its containers die with their shims."""
        pid = self.pids.pop("dockerd", None)
        if pid:
            _signal_in(self.name, pid, signal.SIGKILL)

    def restart_dockerd(self) -> float:
        """The engine crashes and comes back: SIGKILL of its dockerd, then a new dockerd on the same data
        root, ready when it answers. The seconds it took. Containers come back only by their restart policy
        (or whoever starts them again)."""
        t0 = time.monotonic()
        pid = self.pids.get("dockerd")
        self.stop_dockerd()
        if pid:
            _wait(lambda: _gone(pid), f"{self.name} dockerd exit")
        # the engine's containerd dies with it (the containers' shims live on, as after a real crash): killed
        # here too, since while it holds its database the new engine's containerd cannot start, and its pid
        # file removed, since one naming a zombie (nothing here reaps orphans) makes the new engine wait
        # for the old socket forever
        containerd = self.root / "exec" / "containerd" / "containerd.pid"
        text = containerd.read_text().strip() if containerd.exists() else ""
        if text.isdigit():
            _signal_in(self.name, int(text), signal.SIGKILL)
            _wait(lambda: _gone(int(text)), f"{self.name} containerd exit")
        containerd.unlink(missing_ok=True)
        self.docker_sock.unlink(missing_ok=True)
        (self.root / "docker.pid").unlink(missing_ok=True)
        _start_dockerd(self, f"/var/run/netns/{self.name}", self.insecure_registries)
        return time.monotonic() - t0

    def fill_disk(self) -> int:
        """Fill the file system of the engine's data root (one of its own: ``start_server(data_mb=...)``) to
        its last block with files; the bytes taken. :meth:`free_disk` removes them."""
        data = self.root / "data"
        if not os.path.ismount(data):
            raise RuntimeError(f"{self.name}: the data root is the machine's own disk; start it with data_mb")
        n = 0
        chunk = before = shutil.disk_usage(data).free
        while chunk >= 4096:  # the file system's own bookkeeping takes some of what it reports free
            fd = os.open(data / f"{FILLER}-{n}", os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, chunk)
            except OSError:
                chunk //= 2
                continue
            finally:
                os.close(fd)
            n += 1
            chunk = min(chunk, shutil.disk_usage(data).free)
        return before - shutil.disk_usage(data).free

    def free_disk(self) -> None:
        for path in (self.root / "data").glob(f"{FILLER}-*"):
            path.unlink(missing_ok=True)


def _container_processes(root: Path) -> list[int]:
    """The processes whose root file system (the mount on ``/`` in their own mount namespace) lies under
    ``root``: the containers of a server rooted there, and nothing else (the machine's processes see the
    server's mounts elsewhere, never on their ``/``)."""
    own = os.stat("/proc/self/ns/mnt").st_ino
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.stat(entry / "ns" / "mnt").st_ino == own:
                continue
            lines = (entry / "mountinfo").read_text().splitlines()
        except OSError:
            continue
        if any(line.split()[4] == "/" and str(root) + "/" in line for line in lines if len(line.split()) > 4):
            found.append(int(entry.name))
    return found


def _signal_in(ns: str, pid: int, sig: int) -> None:
    """Signal ``pid`` only while it still runs in namespace ``ns``: a recorded pid the kernel reused for
    another process (the machine's own dockerd, say), or a namespace file that no longer names the test
    server's namespace, is never signalled."""
    try:
        if os.stat(f"/proc/{pid}/ns/net").st_ino != os.stat(f"/var/run/netns/{ns}").st_ino:
            return
        if os.stat("/proc/self/ns/net").st_ino == os.stat(f"/var/run/netns/{ns}").st_ino:
            return  # the namespace file names the machine's own network: nothing in it is the server's
        os.kill(pid, sig)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return


def _gone(pid: int) -> bool:
    """The process ended (a zombie not yet reaped counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True


def _answers(docker_host: str) -> bool:
    try:
        return _run("docker", "-H", docker_host, "version", check=False, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _wait(predicate, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f}s")
        time.sleep(0.1)


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _sshd_config(server: TestServer) -> str:
    return "\n".join(
        [
            f"ListenAddress {server.address}",
            "Port 22",
            f"HostKey {server.root / 'ssh_host_ed25519_key'}",
            f"AuthorizedKeysFile {server.root / 'authorized_keys'}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "AllowStreamLocalForwarding yes",
            "AllowTcpForwarding yes",
            "StrictModes no",
            "UsePAM no",
            "Subsystem sftp internal-sftp",
            f"PidFile {server.root / 'sshd.pid'}",
            "LogLevel ERROR",
            # the session's bash then counts as nested and does not read root's ~/.bashrc (bash reads it for a
            # command sshd starts): a test server runs each command as a bare remote host does, not the
            # machine's shell set-up (a version manager's init there costs each command ~90 ms, and a lock it
            # left from a killed command made every command wait 60 s)
            "SetEnv SHLVL=1",
            "",
        ]
    )


@dataclass
class TestNet:
    """A /24 on a Linux bridge in the main namespace (``.1`` is ours): its servers reach each other and us."""

    __test__ = False

    subnet: int

    @property
    def gateway(self) -> str:
        return f"{NET_PREFIX}.{self.subnet}.1"

    @property
    def bridge(self) -> str:
        return f"btb{self.subnet}"


def make_net() -> TestNet:
    """A new test network: a free ``10.77.N.0/24`` (chosen under the machine-wide lock) on its own bridge,
    with bridged traffic between its servers accepted (Docker's FORWARD policy drops it otherwise)."""
    with _machine_lock():
        used = _used_subnets()
        subnet = next(n for n in range(10, 250) if n not in used and not _netns_exists(f"berth-t{n}-2"))
        net = TestNet(subnet)
        _run("ip", "link", "add", net.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{NET_PREFIX}.{subnet}.1/24", "dev", net.bridge)
        _run("ip", "link", "set", net.bridge, "up")
    _run("iptables", "-I", "FORWARD", "-i", net.bridge, "-o", net.bridge, "-j", "ACCEPT", check=False)
    return net


def remove_net(net: TestNet) -> None:
    _run("iptables", "-D", "FORWARD", "-i", net.bridge, "-o", net.bridge, "-j", "ACCEPT", check=False)
    _run("ip", "link", "del", net.bridge, check=False)


def start_server(
    net: TestNet,
    host: int = 2,
    *,
    with_sshd: bool = True,
    with_docker: bool = True,
    insecure_registries: tuple[str, ...] = (),
    data_mb: int | None = None,
) -> TestServer:
    """Make a namespace server at ``10.77.<net>.<host>`` with its own dockerd (and sshd).
    Call :func:`stop_server` to remove it.

    ``with_docker=False``: no engine; the sshd sees a plain file at /var/run/docker.sock (no socket).
    ``insecure_registries``: ``host:port`` of plain-HTTP registries the engine may pull from (on the
    network's ``.1``, which the engine does not count as loopback).
    ``data_mb``: the engine's data root is a file system of that size of its own (a disk that can be filled)."""
    name = f"berth-t{net.subnet}-{host}"
    host_veth, ns_veth = f"bt{net.subnet}x{host}", f"bt{net.subnet}y{host}"
    _run("ip", "netns", "add", name)
    _run("ip", "link", "add", host_veth, "type", "veth", "peer", "name", ns_veth)
    _run("ip", "link", "set", ns_veth, "netns", name)
    _run("ip", "link", "set", host_veth, "master", net.bridge)
    _run("ip", "link", "set", host_veth, "up")
    root = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    root.chmod(0o755)
    server = TestServer(
        name,
        net.subnet,
        host,
        root,
        client_key=asyncssh.generate_private_key("ssh-ed25519"),
        host_key=asyncssh.generate_private_key("ssh-ed25519"),
        insecure_registries=insecure_registries,
    )
    try:
        ns = f"/var/run/netns/{name}"
        for argv in (
            ["ip", "addr", "add", f"{server.address}/24", "dev", ns_veth],
            ["ip", "link", "set", ns_veth, "up"],
            ["ip", "link", "set", "lo", "up"],
            ["ip", "route", "add", "default", "via", server.gateway],
            *(["ip", "route", "add", "unreachable", address] for address in _name_servers()),
        ):
            _run("nsenter", f"--net={ns}", *argv)
        if with_docker:
            if data_mb is not None:
                _data_disk(root, data_mb)
            _start_dockerd(server, ns, insecure_registries)
        else:
            server.docker_sock.write_text("")
        if with_sshd:
            _start_sshd(server, ns)
    except BaseException:
        stop_server(server)
        raise
    return server


def _name_servers() -> list[str]:
    """The machine's name servers (IPv4): none answers inside a test network, where a lookup (the engine makes
    one before each pull from a public registry, which Swarm tries for every task it starts) would wait 10 s for
    its timeouts. Unreachable routes to them make it fail at once, as on a machine without a network."""
    try:
        lines = Path("/etc/resolv.conf").read_text().splitlines()
    except OSError:
        return []
    found = [line.split()[1] for line in lines if line.startswith("nameserver") and len(line.split()) > 1]
    return [f"{a}/32" for a in found if a.count(".") == 3 and not a.startswith("127.")]


def _data_disk(root: Path, size_mb: int) -> None:
    """The engine's data root on a disk of its own: an ext4 file system of ``size_mb`` (a sparse file on the
    machine's disk, loop-mounted; no blocks reserved for root, so a fill leaves nothing), unmounted (and its
    loop device freed) by :func:`stop_server`."""
    image = root / "data.img"
    with image.open("wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    _run("mkfs.ext4", "-q", "-F", "-m", "0", str(image))
    (root / "data").mkdir()
    _run("mount", "-o", "loop", str(image), str(root / "data"))


def _start_dockerd(server: TestServer, ns: str, insecure_registries: tuple[str, ...] = ()) -> None:
    root = server.root
    (root / "data").mkdir(exist_ok=True)
    (root / "exec").mkdir(exist_ok=True)
    log = (root / "dockerd.log").open("ab")
    dockerd = subprocess.Popen(
        [
            "nsenter",
            f"--net={ns}",
            "dockerd",
            "--data-root",
            str(root / "data"),
            "--exec-root",
            str(root / "exec"),
            "--pidfile",
            str(root / "docker.pid"),
            "-H",
            server.docker_host,
            *(f"--insecure-registry={r}" for r in insecure_registries),
        ],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    server.pids["dockerd"] = dockerd.pid
    # a restarted engine answers only once it dealt with the containers it found (stopping each one the
    # crash left running takes up to its stop timeout): wait long enough for that
    _wait(lambda: _answers(server.docker_host), f"{server.name} dockerd", timeout=90)


def _start_sshd(server: TestServer, ns: str) -> None:
    root = server.root
    key_file = root / "ssh_host_ed25519_key"
    key_file.write_bytes(server.host_key.export_private_key("openssh"))
    key_file.chmod(0o600)
    (root / "authorized_keys").write_bytes(server.client_key.export_public_key("openssh"))
    (root / "sshd_config").write_text(_sshd_config(server))
    run = root / "run"
    for sub in ("sshd", "lock"):
        (run / sub).mkdir(parents=True, exist_ok=True)
    if not (run / "docker.sock").is_symlink():
        (run / "docker.sock").symlink_to(server.docker_sock)
    log = (root / "sshd.log").open("ab")
    # sshd forks into the background once it listens: its own pid is read from the PidFile
    _run(
        "nsenter",
        f"--net={ns}",
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        'mount --bind "$1" /run && exec "$2" -f "$3" -E "$4"',
        "sh",
        str(run),
        SSHD,
        str(root / "sshd_config"),
        str(root / "sshd.log"),
    )
    log.close()
    # sshd creates its pid file before it writes the pid: wait for the number, not the file
    _wait(lambda: (root / "sshd.pid").exists() and (root / "sshd.pid").read_text().strip() != "", f"{server.name} sshd")
    server.pids["sshd"] = int((root / "sshd.pid").read_text().split()[0])
    _wait(lambda: _port_open(server.address, 22), f"{server.name} sshd port")


class Stoppable(Protocol):
    def stop(self) -> None: ...


def tear_down(servers: Iterable[TestServer], serving: Iterable[Stoppable | None], net: TestNet) -> None:
    """A module's test servers stopped, then what served them (registries; None: none was started), then
    their network removed."""
    for server in servers:
        stop_server(server)
    for other in serving:
        if other is not None:
            other.stop()
    remove_net(net)


def stop_server(server: TestServer) -> None:
    """End everything the server runs (SIGKILL, as :meth:`TestServer.crash`) and remove it.

    The server is thrown away: a graceful stop of its engine waits for each running container to stop (an app
    that ignores SIGTERM holds it up to dockerd's shutdown timeout, 15 s), which buys nothing here; what a kill
    leaves (containers outliving their shims, mounts) is cleaned up below, as after a crash."""
    ns = server.name
    for what in ("sshd", "dockerd"):
        pid = server.pids.pop(what, None)
        if pid:
            _signal_in(ns, pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        left = _run("ip", "netns", "pids", ns, check=False).stdout.split()
        if not left:
            break
        for found in left:
            if found.isdigit():
                _signal_in(ns, int(found), signal.SIGKILL)
        time.sleep(0.05)
    # a container whose shim died with the server (a crash, an engine that did not come back) lives on in
    # namespaces of its own: found by its root file system, which is under the server's data root
    for pid in _container_processes(server.root):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    # the engine's mounts (overlay, netns files) live under its data and exec roots
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(str(server.root))), reverse=True):
        _run("umount", "-l", mount, check=False)
    _run("ip", "link", "del", f"bt{server.subnet}x{server.host}", check=False)
    _run("ip", "netns", "del", ns, check=False)
    shutil.rmtree(server.root, ignore_errors=True)


def start_servers(net: TestNet, hosts: Iterable[int], **options: Any) -> list[TestServer]:
    """:func:`start_server` for each of ``hosts`` at once (a server's start mostly waits for its dockerd to
    answer, 2-5 s on a loaded machine); when one fails, the others are stopped and its error raised."""
    hosts = list(hosts)
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        futures = [pool.submit(start_server, net, host, **options) for host in hosts]
        wait(futures)
    started = [f.result() for f in futures if f.exception() is None]
    failed = next((f.exception() for f in futures if f.exception() is not None), None)
    if failed is not None:
        for server in started:
            stop_server(server)
        raise failed
    return started


@contextlib.contextmanager
def running_servers(count: int, *, with_sshd: bool = True, with_docker: bool = True) -> Iterator[list[TestServer]]:
    """``count`` servers on one new test network (``.2``, ``.3``, ...), all removed at the end."""
    net = make_net()
    servers: list[TestServer] = []
    try:
        servers = start_servers(net, range(2, 2 + count), with_sshd=with_sshd, with_docker=with_docker)
        yield servers
    finally:
        for server in servers:
            stop_server(server)
        remove_net(net)


def server_changed(
    server: TestServer, server_id: str, *, team_id: str, name: str, revision: int = 1, state: str = "ready"
) -> ServerChanged:
    """``evt.server.changed`` as the api announces a server it holds the key of: its address, its private
    key sealed for ``server_id``, its pinned host key."""
    return ServerChanged(
        server_id=server_id,
        team_id=team_id,
        name=name,
        host=server.address,
        port=22,
        user="root",
        private_key=sealing.seal(server.private_key_pem, sealed_key_aad(server_id)),
        host_key=server.host_key.export_public_key("openssh").decode().strip(),
        state=state,  # type: ignore[arg-type]
        revision=revision,
    )


def load_images(servers: Iterable[TestServer], *tags: str) -> None:
    """Each of ``tags`` copied to each server (:meth:`TestServer.load_image`), the servers at once."""
    servers = list(servers)

    def load(server: TestServer) -> None:
        for tag in tags:
            server.load_image(tag)

    with ThreadPoolExecutor(max_workers=max(1, len(servers))) as pool:
        for done in [pool.submit(load, server) for server in servers]:
            done.result()


def load_image(docker_host: str, tag: str, where: str) -> None:
    """Copy an image of the machine's engine to the engine at ``docker_host`` (``docker save | docker
    load``), skipped when it is there; ``where`` names that engine in the error."""
    if _run("docker", "-H", docker_host, "image", "inspect", tag, check=False).returncode == 0:
        return
    save = subprocess.Popen(["docker", "save", tag], stdout=subprocess.PIPE)
    load = subprocess.run(
        ["docker", "-H", docker_host, "load", "-q"], stdin=save.stdout, capture_output=True, timeout=300
    )
    save.wait(timeout=60)
    if load.returncode != 0 or save.returncode != 0:
        raise RuntimeError(f"loading {tag} into {where} failed: {load.stderr.decode()[-300:]}")
