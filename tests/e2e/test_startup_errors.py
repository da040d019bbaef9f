"""`berth up` fails fast and clearly: a port already taken, a start-up that cannot work."""

from __future__ import annotations

import socket

from berth_cli.platform import leftovers


def test_a_busy_port_is_named_before_anything_starts(fresh_platform):
    port = fresh_platform.ports["nats"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        proc = fresh_platform.berth("up", timeout=60)
    assert proc.returncode == 1
    assert f"ports already in use: nats 127.0.0.1:{port}" in proc.stderr
    assert "BERTH_PORT_BASE" in proc.stderr
    assert not fresh_platform.paths.pidfile.exists()


def test_a_failed_start_up_stops_the_supervisor_and_shows_why(fresh_platform):
    pgdata = fresh_platform.paths.pgdata
    pgdata.mkdir(parents=True)
    (pgdata / "stray-file").write_text("not a database")
    proc = fresh_platform.berth("up", timeout=60)
    assert proc.returncode == 1
    assert "the supervisor exited with code 1" in proc.stderr
    assert "initdb failed" in proc.stderr and "exists but is not empty" in proc.stderr
    assert leftovers(fresh_platform.paths.root) == []
    code, status = fresh_platform.status()
    assert code == 1 and status["running"] is False
