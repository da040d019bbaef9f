"""An application's host names: one generated per web service and its custom domains, claimed for it alone
(``hosts``), refused by field when another application (of any team) has one, overlaps it, or holds the part
of the base domain it is in."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters import applications as repo
from berth_api.adapters.applications import HostRow
from berth_api.domain import host_claims
from berth_api.domain.hosts import namespace_of
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
    return await _claim_hosts(s, app_id, rows, deps.settings.base_domain)


async def _claim_hosts(s: AsyncSession, app_id: str, rows: list[tuple[HostRow, str]], base: str) -> list[HostRow]:
    """Record the application's host rows (one per host) unless another application has one of them, or
    one of them is in a part of the base domain another application holds (``_check_parts``)."""
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
    await _check_parts(s, app_id, rows, base)
    await repo.replace_hosts(s, app_id, [r for r, _ in rows])
    return [r for r, _ in rows]


async def _check_parts(s: AsyncSession, app_id: str, rows: list[tuple[HostRow, str]], base: str) -> None:
    """A name under the base domain that is not a generated host (``habitica.main-app-production.<base>``,
    claimable by its label, ``hosts.own_namespace``) is in the part of the base domain one label under it;
    one application holds a part: the one that has its name (a generated host), or a custom host in it.
    So a custom host under the base domain, or a name one label under it, is a 409 naming the field when
    another application holds its part (another team's application of the same name: its labels end alike;
    a preview's generated hosts, made from its pattern, hold none)."""
    asked: list[tuple[str, str, str]] = []  # (host, its part, where it was given)
    for row, loc in rows:
        top = namespace_of(row.host, base)
        if top is not None and (not row.generated or row.host == top):
            asked.append((row.host, top, loc))
    held = await repo.namespaces_held(s, [top for _, top, _ in asked], app_id)
    for host, top, loc in asked:
        if top in held:
            raise invalid_field(
                loc,
                f"the host {host} is in the part of the base domain under {top}, which another application holds",
                status=409,
                type_="conflict",
            )
