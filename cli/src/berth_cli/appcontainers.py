"""The application containers of the local platform: what ``berth down --all`` stops and the next ``berth up``
starts again.

``berth down`` stops the control plane only: applications keep serving. ``berth down --all`` also stops the
data plane: Traefik (``dataplane``) and every running container Berth made for this platform on the local
engine, found by Berth's labels: ``berth.managed=true`` and a ``berth.team`` that is one of this platform's
teams (an engine may run the containers of another Berth, or of tests, which are not this platform's to
stop). Containers are stopped, never removed: their volumes, files and configuration stay, and each stops
with its own stop timeout (the drain a deployment gave it). Web and worker replicas stop first, databases
last (apps lose their database after they stopped), and start again in the opposite order.

The scheduler starts again only its live versions' web and worker replicas that an engine left exited (and
not while it is down), not databases nor in this order, so the stopped containers are recorded in
``<data>/containers/stopped.json``; the next ``berth up`` starts
those that still exist and are not running, and forgets the record. A container stopped for another reason
(an old version a rollout stopped, a finished one-off run) is never in it, so never started.

This platform's teams are read from the api's schema while Postgres runs (``berth up`` and ``berth down``
both refresh ``<data>/containers/teams.json``), so ``berth down --all`` after ``berth down`` still knows them.

Docker calls are argv lists built here as data (tests compare them exactly) and run with the ``docker`` client.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from berth_cli.datadir import read_json, write_json
from berth_common import labels

DATABASE_KIND = "database"  # the scheduler's berth.kind of a one-click database (and of its TCP proxy)
FIELDS = ("ID", "Names", "State")
SWARM_TASK = "com.docker.swarm.task.id"  # on a Swarm task's container: Swarm replaces one that stops
LABELS = (labels.TEAM, labels.APP, labels.KIND, SWARM_TASK)
FORMAT = "\t".join([*(f"{{{{.{name}}}}}" for name in FIELDS), *(f'{{{{.Label "{key}"}}}}' for key in LABELS)])
STOP_TIMEOUT_S = 600.0  # the whole `docker stop` of a group: each container's own stop timeout applies inside

Runner = Callable[[list[str]], tuple[int, str]]


@dataclass(frozen=True)
class Container:
    """One Berth container as ``docker ps`` lists it."""

    id: str
    name: str
    state: str
    team: str
    app: str
    kind: str
    swarm_task: str = ""


def record_path(root: Path) -> Path:
    return root / "containers" / "stopped.json"


def teams_path(root: Path) -> Path:
    return root / "containers" / "teams.json"


def list_argv(docker: str) -> list[str]:
    """Every container Berth manages on the engine, running or not, one tab-separated line each."""
    return [docker, "ps", "--all", "--no-trunc", "--filter", f"label={labels.MANAGED}=true", "--format", FORMAT]


def parse(out: str) -> list[Container]:
    """The containers of ``list_argv``'s output (lines of another shape are skipped)."""
    found = []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == len(FIELDS) + len(LABELS) and parts[0]:
            found.append(Container(*parts))
    return found


def _is_database(c: Container) -> bool:
    return c.kind == DATABASE_KIND


def to_stop(containers: Iterable[Container], teams: Iterable[str]) -> list[Container]:
    """The running (or restarting) containers of ``teams``: applications first, databases last. A Swarm
    task's container is not stopped: Swarm would start another in its place (its service is Swarm's)."""
    mine = set(teams)
    chosen = [c for c in containers if c.team in mine and c.state in ("running", "restarting") and not c.swarm_task]
    return sorted(chosen, key=lambda c: (_is_database(c), c.team, c.app, c.name))


def stop_argvs(docker: str, containers: Sequence[Container]) -> list[list[str]]:
    """The ``docker stop`` calls for ``containers``, in order: applications, then databases (no ``--time``:
    each container's own stop timeout, set by the scheduler, applies)."""
    apps = [c.id for c in containers if not _is_database(c)]
    dbs = [c.id for c in containers if _is_database(c)]
    return [[docker, "stop", *group] for group in (apps, dbs) if group]


def to_start(containers: Iterable[Container], recorded: Iterable[str]) -> list[Container]:
    """The recorded containers that still exist and are not running: databases first."""
    ids = set(recorded)
    chosen = [c for c in containers if c.id in ids and c.state not in ("running", "restarting")]
    return sorted(chosen, key=lambda c: (not _is_database(c), c.team, c.app, c.name))


def start_argvs(docker: str, containers: Sequence[Container]) -> list[list[str]]:
    """The ``docker start`` calls for ``containers``, in order: databases, then applications."""
    dbs = [c.id for c in containers if _is_database(c)]
    apps = [c.id for c in containers if not _is_database(c)]
    return [[docker, "start", *group] for group in (dbs, apps) if group]


def run_docker(argv: list[str]) -> tuple[int, str]:
    """Run a docker call: (exit code, stdout); 127 when the client cannot run at all."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=STOP_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return 127, str(exc)
    return proc.returncode, proc.stdout


class EngineError(RuntimeError):
    """The engine refused a call."""


class EngineDown(EngineError):
    """The engine (or its client) does not answer: nothing of it can be running."""


def _listed(docker: str, run: Runner) -> list[Container]:
    code, out = run(list_argv(docker))
    if code != 0:
        raise EngineDown("the Docker engine does not answer")
    return parse(out)


def _recorded(root: Path) -> list[dict[str, Any]]:
    record = read_json(record_path(root)) or {}
    return [c for c in record.get("containers", []) if isinstance(c, dict) and isinstance(c.get("id"), str)]


def running_count(teams: Sequence[str], docker: str, run: Runner = run_docker) -> int | None:
    """How many containers of ``teams`` run (``berth down`` says they keep serving); None: no engine."""
    try:
        return len(to_stop(_listed(docker, run), teams))
    except EngineError:
        return None


def stop(root: Path, teams: Sequence[str], docker: str, run: Runner = run_docker) -> list[Container]:
    """Stop the running containers of ``teams`` and record them (with what an earlier call recorded) for
    ``start_recorded``; the containers stopped. Recorded before the first stop: a call cut short still lets
    ``berth up`` start what it stopped."""
    chosen = to_stop(_listed(docker, run), teams)
    if not chosen:
        return []
    earlier = {c["id"]: c for c in _recorded(root)}
    record_path(root).parent.mkdir(parents=True, exist_ok=True)
    write_json(record_path(root), {"containers": list({**earlier, **{c.id: asdict(c) for c in chosen}}.values())})
    for argv in stop_argvs(docker, chosen):
        if run(argv)[0] != 0:
            raise EngineError(f"`docker stop` failed for {len(argv) - 2} container(s)")
    return chosen


def start_recorded(root: Path, docker: str, run: Runner = run_docker) -> list[Container]:
    """Start the containers ``stop`` recorded (those that still exist and are not running) and forget the
    record; the containers started. The record stays when the engine does not answer or a start fails."""
    recorded = _recorded(root)
    if not recorded:
        record_path(root).unlink(missing_ok=True)
        return []
    chosen = to_start(_listed(docker, run), [c["id"] for c in recorded])
    for argv in start_argvs(docker, chosen):
        if run(argv)[0] != 0:
            raise EngineError(f"`docker start` failed for {len(argv) - 2} container(s)")
    record_path(root).unlink(missing_ok=True)
    return chosen


# --- this platform's teams -------------------------------------------------------------------------


async def _query_teams(url: str, schema: str) -> list[str]:
    import asyncpg

    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(dsn, timeout=5, server_settings={"search_path": schema})
    try:
        rows = await conn.fetch("SELECT id FROM teams ORDER BY id")
    finally:
        await conn.close()
    return [str(r["id"]) for r in rows]


def api_dsn(root: Path, database_url: str | None) -> str:
    """asyncpg's DSN for the api's role: the URL ``secrets_cmd.api_database_url`` names, made without
    SQLAlchemy (whose import alone costs ``berth up`` and ``berth down`` most of a second)."""
    from urllib.parse import quote, urlsplit, urlunsplit

    from berth_cli import components
    from berth_cli.layout import DATABASE, Paths, resolve_ports
    from berth_cli.secrets_cmd import _secret_key
    from berth_common.db.provision import role_for, role_password

    if database_url and urlsplit(database_url).username:
        return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    if database_url:
        base = database_url
    else:
        password_file = Paths(root).pg_password
        if not password_file.is_file():
            raise ValueError(f"no local Postgres in {root}")
        port = resolve_ports(dict(os.environ))["postgres"]
        base = components.pg_admin_url(port, password_file.read_text().strip(), db=DATABASE)
    parts = urlsplit(base)
    role = f"{quote(role_for('api'), safe='')}:{quote(role_password(_secret_key(root), 'api'), safe='')}"
    netloc = f"{role}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(("postgresql", netloc, parts.path, parts.query, parts.fragment))


def refresh_teams(root: Path, database_url: str | None) -> list[str] | None:
    """Read this platform's team ids from the api's schema and remember them in the data directory; None
    when the database does not answer (the remembered ones stay)."""
    from berth_cli.layout import schema_of

    try:
        url = api_dsn(root, database_url)
        teams = asyncio.run(asyncio.wait_for(_query_teams(url, schema_of("api")), 10))
    except Exception:  # no database here, not running, no api schema yet: the remembered teams stay
        return None
    teams_path(root).parent.mkdir(parents=True, exist_ok=True)
    write_json(teams_path(root), {"teams": teams})
    return teams


def known_teams(root: Path) -> list[str] | None:
    """The team ids remembered by the last ``refresh_teams``; None when there are none."""
    teams = (read_json(teams_path(root)) or {}).get("teams")
    return [str(t) for t in teams] if isinstance(teams, list) else None


def describe(containers: Sequence[Container]) -> str:
    """``name (kind), ...`` for a message."""
    return ", ".join(f"{c.name} ({c.kind or 'container'})" for c in containers)


def down_all(root: Path, teams: Sequence[str] | None, docker: str, run: Runner = run_docker) -> tuple[bool, str]:
    """``berth down --all``'s part: stop this platform's containers; (done, what to tell the user)."""
    if teams is None:
        return False, (
            "this platform's teams are not known (its database did not answer `berth up` or `berth down`): "
            "no application container was stopped; run `berth up`, then `berth down --all`"
        )
    try:
        stopped = stop(root, teams, docker, run)
    except EngineDown as exc:
        return True, f"{exc}: no application container to stop"
    except EngineError as exc:
        return False, f"application containers: {exc} (`berth down --all` again retries)"
    if not stopped:
        return True, "no application container of this platform was running"
    return True, (
        f"stopped {len(stopped)} application container(s), volumes and data kept "
        f"(`berth up` starts them again): {describe(stopped)}"
    )


def up_again(root: Path, docker: str, run: Runner = run_docker) -> tuple[bool, str | None]:
    """``berth up``'s part: start what ``berth down --all`` stopped; (done, what to tell the user if anything)."""
    try:
        started = start_recorded(root, docker, run)
    except EngineError as exc:
        return False, f"the application containers `berth down --all` stopped were not started: {exc}"
    if not started:
        return True, None
    return True, f"started {len(started)} application container(s) `berth down --all` had stopped: {describe(started)}"
