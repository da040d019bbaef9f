"""The all-in-one mode: the six services in one process (``berth-allinone``), for small servers.

Each service keeps its own NATS connection, database role (``BERTH_<SCHEMA>_DATABASE_URL``) and health
port (``BERTH_<SCHEMA>_HTTP_PORT``); they still talk to each other only over NATS. Their migrations run
one at a time (``berth_common.db.migrate`` holds a process-wide lock: Alembic's proxies are global).

The cli names no service package: every service declares its bootstrap module in its ``pyproject.toml``
as an entry point of the group ``berth.services``, named like the service (``api = "berth_api.bootstrap"``).
A bootstrap module has ``spec()``, the service's ``ServiceSpec``, and ``main()``, which runs it alone.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from berth_cli.layout import SERVICE_NAMES
from berth_common.runtime import ServiceSpec, run

GROUP = "berth.services"


def installed() -> dict[str, EntryPoint]:
    """The services installed in this environment: their entry points by name, in the order of ``SERVICE_NAMES``."""
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    return {name: found[name] for name in SERVICE_NAMES if name in found}


def specs() -> list[ServiceSpec]:
    """Every service's spec, its settings read from the environment."""
    services = installed()
    missing = [name for name in SERVICE_NAMES if name not in services]
    if missing:
        raise RuntimeError(f"not installed (no {GROUP!r} entry point): {', '.join(missing)}")
    return [ep.load().spec() for ep in services.values()]


def main() -> None:
    run(*specs())


if __name__ == "__main__":
    main()
