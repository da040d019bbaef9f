"""Migrations in a short-lived child process, so a long-running service never keeps alembic in memory.

``python -m berth_common.db.migrate_process SCHEMA VERSIONS_DIR`` with the database URL in the
environment variable ``BERTH_MIGRATE_URL`` (never on the command line, where ``ps`` would show it).
Exit status 0: done; 75 (EX_TEMPFAIL): the database is not there yet, try again; anything else: the
migration failed (its error on stderr).
"""

from __future__ import annotations

import ast
import asyncio
import os
import sys
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from berth_common.db.engine import check_schema, db_not_available, make_engine

URL_VARIABLE = "BERTH_MIGRATE_URL"
EX_TEMPFAIL = 75


class MigrationError(RuntimeError):
    """A migration failed (not merely: the database was not reachable)."""


def _literal(tree: ast.Module, name: str) -> object:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return ast.literal_eval(node.value) if node.value is not None else None
    raise ValueError(f"no {name}")


def script_heads(versions_dir: Path) -> set[str] | None:
    """The head revisions of the migration scripts in ``versions_dir``, read from their source without
    alembic; None when a script does not say plainly what it is (alembic is asked then)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    try:
        for path in versions_dir.glob("*.py"):
            if path.name.startswith(("__", ".#")):
                continue
            tree = ast.parse(path.read_text(), str(path))
            revision, down = _literal(tree, "revision"), _literal(tree, "down_revision")
            if not isinstance(revision, str):
                return None
            revisions.add(revision)
            downs = [] if down is None else [down] if isinstance(down, str) else down
            if not isinstance(downs, (list, tuple)) or not all(isinstance(d, str) for d in downs):
                return None
            parents.update(downs)
    except (OSError, SyntaxError, ValueError):
        return None
    return (revisions - parents) or None


async def schema_at_head(engine: AsyncEngine, schema: str, versions_dir: Path) -> bool:
    """Whether ``schema`` is already at the head of ``versions_dir``: a restarted service then starts no
    child process (a Python start and alembic: about a second of CPU) to find there is nothing to do."""
    heads = script_heads(versions_dir)
    if heads is None:
        return False
    table = f'"{check_schema(schema)}".alembic_version'
    async with engine.connect() as conn:
        if (await conn.execute(text("SELECT to_regclass(:t)"), {"t": table})).scalar() is None:
            return False
        query = text(f"SELECT version_num FROM {table}")  # noqa: S608 - the schema name is checked above
        current = (await conn.execute(query)).scalars().all()
    return set(current) == heads


async def run_migrations_isolated(url: str, schema: str, versions_dir: Path, timeout_s: float = 600.0) -> None:
    """Run the migrations of ``schema`` in a child process; ConnectionError if the database is not there."""
    env = {**os.environ, URL_VARIABLE: url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "berth_common.db.migrate_process",
        schema,
        str(versions_dir),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise MigrationError(f"migrations of {schema} did not finish within {timeout_s:.0f}s") from None
    tail = err.decode(errors="replace").strip()[-2000:]
    if proc.returncode == EX_TEMPFAIL:
        raise ConnectionError(f"database not available for {schema}: {tail}")
    if proc.returncode != 0:
        raise MigrationError(f"migrations of {schema} failed (exit {proc.returncode}): {tail}")


async def _main(schema: str, versions_dir: Path) -> int:
    from berth_common.db.migrate import run_migrations

    engine = make_engine(os.environ[URL_VARIABLE], schema, poolclass=NullPool)
    try:
        await run_migrations(engine, schema, versions_dir)
        return 0
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return EX_TEMPFAIL if db_not_available(exc) else 1
    finally:
        await engine.dispose()


if __name__ == "__main__":
    if len(sys.argv) != 3 or URL_VARIABLE not in os.environ:
        print(
            f"usage: {URL_VARIABLE}=URL python -m berth_common.db.migrate_process SCHEMA VERSIONS_DIR", file=sys.stderr
        )
        sys.exit(2)
    sys.exit(asyncio.run(_main(sys.argv[1], Path(sys.argv[2]))))
