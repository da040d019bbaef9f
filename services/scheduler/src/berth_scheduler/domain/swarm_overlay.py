"""The overlay probe of a Swarm: how Berth's readiness check reaches a task on a node it does not reach.

A task's overlay address answers only from inside the overlay network. On a node Berth reaches over SSH the
check goes to the task's ``docker_gwbridge`` address (``adapters/swarm_probe.py``); on any other node (an
adopted Swarm's worker) it is made from the overlay probe instead: one small container of Berth's busybox
image on the manager's node, attached to the Swarm's overlay network, that does nothing but sleep. Each
check is one ``nc`` run in it (a Docker exec): the GET goes to its input, the task's answer comes back on
its output, so the check is the same "answers HTTP on its port" as anywhere else, in any application image.
"""

from __future__ import annotations

import math
from typing import Any

from berth_common import labels as label
from berth_common.images import BUSYBOX_IMAGE

PROBE_IMAGE = BUSYBOX_IMAGE
PROBE_LABEL = "berth.overlay-probe"  # the overlay network the probe is on
SLEEP_S = 2_147_483_647  # the probe waits for execs: it runs until it is removed (restarted by the engine)


def probe_name(network: str) -> str:
    """The overlay probe's container name on the manager's node (one per overlay network)."""
    return f"berth-probe-{network}"


def probe_body(network: str) -> dict[str, Any]:
    """The ``POST /containers/create`` body of the overlay probe: busybox asleep on ``network`` (an
    attachable overlay), no port published, restarted with its engine."""
    return {
        "Image": PROBE_IMAGE,
        "Cmd": ["sleep", str(SLEEP_S)],
        "Entrypoint": [],
        "User": "0:0",
        "Labels": {label.MANAGED: "true", PROBE_LABEL: network},
        "StopTimeout": 1,
        "HostConfig": {"NetworkMode": network, "RestartPolicy": {"Name": "unless-stopped"}},
        "NetworkingConfig": {"EndpointsConfig": {network: {}}},
    }


def connect_argv(address: str, port: int, timeout_s: float) -> list[str]:
    """The exec that opens one TCP connection from the probe to ``address:port``: its input is sent, the
    answer is its output; it gives up connecting (and waiting at the end) after ``timeout_s``."""
    return ["nc", "-w", str(max(1, math.ceil(timeout_s))), address, str(int(port))]


def connect_failure(stderr: str) -> str:
    """What ``nc`` said when it ended without an answer, in the words the readiness check uses."""
    text = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    if "refused" in text.lower():
        return "connection refused"
    return text or "the connection was closed with no HTTP answer"
