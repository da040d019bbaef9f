"""The processes a benchmark starts itself (NATS, PostgreSQL, a service): started in their own session with
their output in a log file, waited for on their port, and stopped with a signal (killed after 30 s)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from berth_cli import components


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def start(launch: components.Launch, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            launch.argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **launch.env, **(env or {})},
            start_new_session=True,
            **launch.popen_kwargs(),  # type: ignore[arg-type]
        )


def stop(proc: subprocess.Popen[bytes] | None, sig: int = 15) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
