"""A NATS cluster of real nats-server processes on loopback (one configuration file per node), for tests."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from berth_cli import components
from tests.support.procs import PortTakenError, Proc, wait_healthz, wait_port


def distinct_ports(count: int) -> list[int]:
    """``count`` free loopback ports, all different (each held until all are chosen)."""
    held = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            held.append(sock)
        return [int(s.getsockname()[1]) for s in held]
    finally:
        for sock in held:
            sock.close()


def node_config(name: str, port: int, cluster_port: int, routes: list[int], store: Path, cluster: str) -> dict:
    """A node's configuration: its name, client and route ports, JetStream store and the routes to its peers
    (nats-server reads JSON as its configuration format)."""
    return {
        "server_name": name,
        "listen": f"127.0.0.1:{port}",
        "jetstream": {"store_dir": str(store)},
        "cluster": {
            "name": cluster,
            "listen": f"127.0.0.1:{cluster_port}",
            "routes": [f"nats-route://127.0.0.1:{p}" for p in routes],
        },
    }


@dataclass
class Node:
    name: str
    folder: Path
    port: int
    cluster_port: int
    monitor_port: int
    proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def launch(self) -> None:
        argv = [components.bin_path("nats-server"), "-c", str(self.folder / "nats.conf"), "-m", str(self.monitor_port)]
        self.proc = Proc(components.Launch(self.name, argv), self.folder / "nats.log").start()

    def wait_listening(self) -> None:
        assert self.proc is not None
        wait_port(self.port, proc=self.proc)

    def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.proc is not None
        wait_healthz(self.monitor_port, self.proc, timeout=timeout)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.stop(signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def jsz(self) -> dict:
        """The node's JetStream report (``/jsz`` with the streams' cluster state)."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{self.monitor_port}/jsz?streams=true", timeout=2) as resp:
            return json.loads(resp.read())


@dataclass
class NatsCluster:
    folder: Path
    size: int = 3
    name: str = "berth-test"
    # More configuration for node ``i`` given every node's route port (users, the cluster's own section...).
    configure: Callable[[int, list[int]], dict] | None = None
    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        """``BERTH_NATS_URL`` for the cluster: every node, comma-separated."""
        return ",".join(n.url for n in self.nodes)

    def start(self, attempts: int = 3) -> NatsCluster:
        """Start every node; when another process took one of the ports meanwhile (parallel test workers),
        again on new ports."""
        for attempt in range(attempts):
            try:
                return self._start()
            except PortTakenError:
                self.stop()
                for node in self.nodes:  # a fresh store: no state naming the old ports
                    shutil.rmtree(node.folder / "js", ignore_errors=True)
                self.nodes.clear()
                if attempt == attempts - 1:
                    raise
        return self

    def _start(self) -> NatsCluster:
        ports = distinct_ports(3 * self.size)
        cluster_ports = ports[: self.size]
        for i in range(self.size):
            folder = self.folder / f"n{i + 1}"
            (folder / "js").mkdir(parents=True, exist_ok=True)
            node = Node(f"n{i + 1}", folder, ports[self.size + i], cluster_ports[i], ports[2 * self.size + i])
            others = [p for j, p in enumerate(cluster_ports) if j != i]
            config = node_config(node.name, node.port, node.cluster_port, others, folder / "js", self.name)
            if self.configure is not None:
                config.update(self.configure(i, cluster_ports))
            (folder / "nats.conf").write_text(json.dumps(config, indent=2))
            self.nodes.append(node)
        for node in self.nodes:  # all at once: JetStream is ready only when the meta group has its quorum
            node.launch()
        for node in self.nodes:
            node.wait_listening()
        for node in self.nodes:
            node.wait_ready()
        return self

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
