"""Schema names, checked without SQLAlchemy: the ``berth`` CLI derives a role's name and URL from them on
commands that never open an engine (``berth down``)."""

from __future__ import annotations

import re

SCHEMA_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def check_schema(schema: str) -> str:
    if not SCHEMA_RE.fullmatch(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    return schema
