"""A Docker engine of a test's own in the machine's network namespace: its own dockerd (and containerd) with
its own socket, data root, exec root and bridge, so a test can crash and restart it (kill -9, as a power loss
would) without touching the machine's engine, which other work shares.

It stands in for the platform's ``local`` server (``DOCKER_HOST`` pointed at :attr:`PrivateEngine.docker_host`):
it lives in the machine's network namespace because the local server publishes web replicas on the machine's
loopback (``127.0.0.1:PORT``), where the local Traefik and the scheduler's readiness checks reach them. So
that it changes nothing the machine's engine owns, it writes no iptables rule and no sysctl
(``--iptables=false``, ``--ip-forward=false``, ``--ip-masq=false``: published ports are served by
``docker-proxy`` on loopback, which needs neither), reads no ``/etc/docker/daemon.json`` (a file of its own)
and attaches its containers to a bridge of a test network (``testservers.make_net``: a ``10.77.N.0/24``
chosen under the machine-wide lock, bridged traffic between its containers accepted). Its user-defined
networks come from the engine's default pools, which skip every subnet the machine already routes.

Everything is torn down by pid (dockerd, containerd, the shims and proxies naming its paths or its subnet,
the containers rooted under its data root), its mounts unmounted and its network removed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import testservers
from tests.support.testservers import TestNet, _container_processes, _gone, _run, _wait, make_net, remove_net


def dockerd_argv(root: Path, bridge: str) -> list[str]:
    """The engine's command line: everything it keeps under ``root``, its containers on ``bridge``, nothing
    written to the machine's firewall or sysctls."""
    return [
        "dockerd",
        "--data-root",
        str(root / "data"),
        "--exec-root",
        str(root / "exec"),
        "--pidfile",
        str(root / "docker.pid"),
        "--config-file",
        str(root / "daemon.json"),
        "-H",
        f"unix://{root / 'docker.sock'}",
        "--bridge",
        bridge,
        "--iptables=false",
        "--ip-forward=false",
        "--ip-masq=false",
    ]


@dataclass
class PrivateEngine:
    """A running private engine: ``docker_host`` is what ``DOCKER_HOST`` takes to reach it."""

    net: TestNet
    root: Path
    pids: dict[str, int] = field(default_factory=dict)
    restarts: int = 0
    last_killed: int | None = None  # the dockerd the last restart killed

    @property
    def docker_sock(self) -> Path:
        return self.root / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.docker_sock}"

    @property
    def subnet_prefix(self) -> str:
        return self.net.gateway.rsplit(".", 1)[0] + "."

    def docker(self, *args: str, timeout: float = 120) -> str:
        """The docker CLI against this engine."""
        return _run("docker", "-H", self.docker_host, *args, timeout=timeout).stdout

    def answers(self) -> bool:
        try:
            return _run("docker", "-H", self.docker_host, "version", check=False, timeout=10).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def load_image(self, tag: str) -> None:
        """Copy an image of the machine's engine here (``docker save | docker load``), skipped when it is here."""
        testservers.load_image(self.docker_host, tag, "the private engine")

    def start_dockerd(self) -> None:
        """Start the engine; ready when it answers (a restarted one first stops the containers it found)."""
        for sub in ("data", "exec"):
            (self.root / sub).mkdir(exist_ok=True)
        config = self.root / "daemon.json"
        if not config.exists():
            config.write_text("{}\n")
        with (self.root / "dockerd.log").open("ab") as log:
            dockerd = subprocess.Popen(
                dockerd_argv(self.root, self.net.bridge), stdout=log, stderr=log, start_new_session=True
            )
        self.pids["dockerd"] = dockerd.pid
        _wait(self.answers, "the private engine", timeout=90)

    def _containerd_pid(self) -> int | None:
        pid_file = self.root / "exec" / "containerd" / "containerd.pid"
        text = pid_file.read_text().strip() if pid_file.exists() else ""
        return int(text) if text.isdigit() else None

    def _kill_engine(self) -> None:
        """SIGKILL of dockerd and its containerd (the containers' shims live on, as after a crash); their pid
        files and socket removed (one naming a zombie makes the next engine wait forever)."""
        pid = self.pids.pop("dockerd", None)
        if pid and _mentions(pid, self.root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait(lambda: _gone(pid), "the private engine's exit")
        containerd = self._containerd_pid()
        if containerd is not None and _mentions(containerd, self.root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(containerd, signal.SIGKILL)
            _wait(lambda: _gone(containerd), "the private engine's containerd exit")
        (self.root / "exec" / "containerd" / "containerd.pid").unlink(missing_ok=True)
        self.docker_sock.unlink(missing_ok=True)
        (self.root / "docker.pid").unlink(missing_ok=True)

    def restart(self) -> float:
        """The engine crashes and comes back (kill -9, then a new dockerd on the same data root): the seconds
        it took. Its containers come back only by whoever starts them again."""
        t0 = time.monotonic()
        self.last_killed = self.pids.get("dockerd")
        self._kill_engine()
        self.start_dockerd()
        self.restarts += 1
        return time.monotonic() - t0

    def stop(self) -> None:
        """Everything the engine ran ended (SIGKILL), its mounts undone, its files and network removed."""
        self._kill_engine()
        for pid in self._leftovers():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(self.root) + "/")), reverse=True):
            _run("umount", "-l", mount, check=False)
        subprocess.run(["rm", "-rf", "--", str(self.root)], capture_output=True, check=False, timeout=120)
        remove_net(self.net)

    def _leftovers(self) -> list[int]:
        """The processes the engine left: shims naming its paths, proxies to its subnet, its containers."""
        found = set(_container_processes(self.root))
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if any(str(self.root) + "/" in a for a in argv):
                found.add(int(entry.name))
            elif argv and argv[0].endswith("docker-proxy") and _proxies_to(argv, self.subnet_prefix):
                found.add(int(entry.name))
        return sorted(found)


def _mentions(pid: int, root: Path) -> bool:
    """Whether ``pid`` is still a process whose command line names something under ``root`` (a recorded pid
    the kernel gave to another process is never signalled)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    return any(str(root) + "/" in a for a in argv)


def _proxies_to(argv: list[str], prefix: str) -> bool:
    """Whether a ``docker-proxy`` command line forwards to an address starting with ``prefix``."""
    return any(
        a == "-container-ip" and i + 1 < len(argv) and argv[i + 1].startswith(prefix) for i, a in enumerate(argv)
    )


def start_engine() -> PrivateEngine:
    """A new private engine on a new test network; :meth:`PrivateEngine.stop` removes both."""
    net = make_net()
    root = Path(tempfile.mkdtemp(prefix="berth-engine-"))
    root.chmod(0o755)
    engine = PrivateEngine(net, root)
    try:
        engine.start_dockerd()
    except BaseException:
        engine.stop()
        raise
    return engine


@contextlib.contextmanager
def private_engine() -> Iterator[PrivateEngine]:
    engine = start_engine()
    try:
        yield engine
    finally:
        engine.stop()
