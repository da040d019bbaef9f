"""An application's host names: one generated per web service and its custom domains, claimed for it alone
(``hosts``), refused by field when another application (of any team) has one or overlaps it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters import applications as repo
from berth_api.adapters.applications import HostRow
from berth_api.domain import host_claims
from berth_api.domain.problems import invalid_field
from berth_api.usecases import Deps


async def sync_hosts(
    deps: Deps,
    s: AsyncSession,
    app_id: str,
    app: str,
    env: str,
    services: list[dict[str, Any]],
    config_hosts: dict[str, str] | None = None,
) -> list[HostRow]:
    """Claim the application's host names (``domain.host_claims``: one generated per web service, a
    preview's from its pattern: ``config_hosts``; one per other routed port asking for it; then its custom
    domains), refused by field when another application has one or overlaps it."""
    found = host_claims.claims(services, app, env, deps.settings.base_domain, config_hosts)
    rows = [(HostRow(c.host, c.service, c.generated, c.port), c.loc) for c in found]
    return await _claim_hosts(s, app_id, rows)


async def _claim_hosts(s: AsyncSession, app_id: str, rows: list[tuple[HostRow, str]]) -> list[HostRow]:
    """Record the application's host rows (one per host) unless another application has one of them."""
    taken = await repo.hosts_taken(s, [r.host for r, _ in rows], app_id)
    for row, loc in rows:
        if row.host in taken:
            raise invalid_field(
                loc, f"the host {row.host} is in use by another application", status=409, type_="conflict"
            )
    overlapping = await repo.hosts_overlapping(s, [r.host for r, _ in rows], app_id)
    for row, loc in rows:
        if row.host in overlapping:
            raise invalid_field(
                loc,
                f"the host {row.host} overlaps {overlapping[row.host]}, a host of another team's application",
                status=409,
                type_="conflict",
            )
    await repo.replace_hosts(s, app_id, [r for r, _ in rows])
    return [r for r, _ in rows]
