"""What a restore checks before it writes (pure): which restores write over data that exists (those read
the stored object once first and refuse on a wrong SHA-256), how a new database a failed restore made is
removed again, and the refusal's words.
"""

from __future__ import annotations

from berth_scheduler.domain.dumps import Exec, _my_env, _pg_env, _tools


def overwrites(engine: str, database: str | None, overwrite: bool) -> bool:
    """True when the restore writes into data that exists: over a database (confirmed), every database of
    the server (a pg_dumpall or a whole-server dump), or Redis (its one RDB file is replaced)."""
    return overwrite or database is None or engine == "redis"


def drop_new_database(engine: str, database: str | None, user: str, password: str) -> Exec | None:
    """The command removing the new database ``database`` a restore made and could not fill (None: the
    engine makes none of its own: nothing to remove)."""
    if database is None:
        return None
    if engine == "postgresql":
        return Exec(["dropdb", "--no-password", "--if-exists", "--force", "-U", user, database], _pg_env(password))
    if engine in ("mysql", "mariadb"):
        _, _, admin = _tools(engine)
        return Exec([admin, "-u", user, "--force", "drop", database], _my_env(password))
    return None


def mismatch(
    found_sha256: str, found_size: int, recorded_sha256: str, recorded_size: int | None, into: str
) -> str | None:
    """Why the stored object is not the one the backup recorded (None: it is), with what was not done."""
    if recorded_size is not None and found_size != recorded_size:
        return (
            f"the backup object has {found_size} bytes, the backup recorded {recorded_size}: "
            f"nothing was written into {into}"
        )
    if found_sha256 != recorded_sha256:
        return (
            f"the backup object's SHA-256 is {found_sha256}, the backup recorded {recorded_sha256}: "
            f"nothing was written into {into}"
        )
    return None
