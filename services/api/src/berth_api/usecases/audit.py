"""Reading the audit log (rows are written by the HTTP layer's audit middleware)."""

from __future__ import annotations

from typing import Any

from berth_api.adapters import audit as repo
from berth_api.adapters.audit import AuditFilter
from berth_api.domain.identity import Principal
from berth_api.usecases import Deps


async def list_entries(
    deps: Deps, principal: Principal, f: AuditFilter, limit: int, before: int | None
) -> list[dict[str, Any]]:
    async with deps.sessionmaker() as s:
        return await repo.list_rows(s, principal.team_id, f, limit, before)
