"""Host ports for web replicas: an ephemeral port from the kernel, on loopback, not handed out twice."""

from __future__ import annotations

import socket
import time

_RECENT: dict[int, float] = {}
_HOLD_S = 120.0


def allocate_port(host: str = "127.0.0.1") -> int:
    """A port free right now; recently handed-out ports are skipped (their container may not run yet)."""
    now = time.monotonic()
    for port, at in list(_RECENT.items()):
        if now - at > _HOLD_S:
            del _RECENT[port]
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in _RECENT:
            _RECENT[port] = now
            return port
    raise RuntimeError("no free host port found")
