"""Rows read as plain dicts (column name -> value), the form the api's adapters answer with."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable


def as_dict(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


async def one_row(session: AsyncSession, statement: Executable) -> dict[str, Any]:
    """The one row the statement returns (an error if there is none)."""
    return as_dict((await session.execute(statement)).one())


async def first_row(session: AsyncSession, statement: Executable) -> dict[str, Any] | None:
    """The first row the statement returns, or None."""
    row = (await session.execute(statement)).first()
    return None if row is None else as_dict(row)


async def all_rows(session: AsyncSession, statement: Executable) -> list[dict[str, Any]]:
    return [as_dict(r) for r in (await session.execute(statement)).all()]
