"""The Docker health check of a database's container, per engine, as exact data.

Docker runs the check inside the container every ``interval_s``; ``retries`` failures in a row (a probe
that does not finish within ``timeout_s`` is a failure) make the container ``unhealthy``, which the metrics
service's built-in "database down" alert counts as down. During ``start_period_s`` failures do not count
(a first start initialises the data directory), but the first success makes the container healthy.

Each check asks only whether the engine answers, never whether a login works, so it carries no credential:
its argv is part of the container's configuration, which ``docker inspect`` shows to anyone who can reach
the engine. The probes are exec form (an argv, no shell) and need no password:

- PostgreSQL: ``pg_isready`` over TCP to the container's loopback address; it stops at the server's first
  answer and never authenticates (user and database are names, not secrets; the server logs nothing).
- MySQL and MariaDB: ``mysqladmin ping`` / ``mariadb-admin ping`` on the local socket. Its exit status is 0
  whenever the server answers, an "Access denied" included (the documented meaning of ``ping``); on the
  socket MariaDB's ``root@localhost`` logs in by ``unix_socket`` (the container's user is root), so no
  "Access denied" line lands in its log.
- Redis: ``redis-cli ping``. Without the password the server answers ``NOAUTH``; redis-cli exits 0 for any
  answer and 1 when it cannot talk to the server, which is the question asked.
- MongoDB: ``mongosh`` running the ``ping`` command, which MongoDB answers before authentication.

A hung engine (its process stopped, deadlocked, or out of memory) accepts the connection in the kernel but
never answers, so the probe runs out of ``timeout_s`` and fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from berth_common import dbengines

NANO = 1_000_000_000


@dataclass(frozen=True)
class HealthTiming:
    """How often the check runs, how long one probe may take, how many failures in a row make the container
    unhealthy, and the grace after a start during which failures do not count."""

    interval_s: float = 10.0
    timeout_s: float = 5.0
    retries: int = 3
    start_period_s: float = 60.0


def probe(engine_name: str, user: str, database: str) -> tuple[str, ...]:
    """The argv that answers "does the engine answer?" inside the container of ``engine_name``."""
    eng = dbengines.engine(engine_name)
    port = str(eng.port)
    if eng.name == "postgresql":
        return ("pg_isready", "-q", "-h", "127.0.0.1", "-p", port, "-U", user, "-d", database)
    if eng.name == "mysql":
        return ("mysqladmin", "ping", "--silent")
    if eng.name == "mariadb":
        return ("mariadb-admin", "ping", "--silent")
    if eng.name == "redis":
        return ("redis-cli", "-h", "127.0.0.1", "-p", port, "ping")
    return ("mongosh", "--quiet", "--norc", "--port", port, "--eval", "db.adminCommand('ping').ok")


def healthcheck(engine_name: str, user: str, database: str, timing: HealthTiming) -> dict[str, Any]:
    """The container create body's ``Healthcheck`` (durations in nanoseconds, as the Engine API takes them)."""
    return {
        "Test": ["CMD", *probe(engine_name, user, database)],
        "Interval": round(timing.interval_s * NANO),
        "Timeout": round(timing.timeout_s * NANO),
        "Retries": timing.retries,
        "StartPeriod": round(timing.start_period_s * NANO),
    }
