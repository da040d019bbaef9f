"""An application's host names: one generated per web service and its custom domains, claimed for it alone
(``hosts``), refused by field when another application (of any team) has one or overlaps it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters import applications as repo
from berth_api.adapters.applications import HostRow
from berth_api.domain.hosts import generated_host, port_host, reserved_for_generated
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
    """Claim the application's host names: one generated per web service (a preview's from its pattern:
    ``config_hosts``), then its custom domains.

    Services with a path prefix (``path_prefix``, compose applications) may share a host under different
    paths, a custom one or another service's generated host: the host is claimed once, by the application
    (its row names the service whose generated host it is, else the first service that has it); the other
    services find it among their ``domains`` (``build_spec``). A compose service's other routed port may
    have a generated host of its own (``port_hosts`` entry ``generated``: ``port_host``) and a path of its
    own: a host is checked once per path, each under its port's path."""
    base = deps.settings.base_domain
    rows: list[tuple[HostRow, str, str]] = []
    web = [(i, svc) for i, svc in enumerate(services) if svc["kind"] == "web"]
    generated = {
        svc["name"]: (config_hosts or {}).get(svc["name"]) or generated_host(svc["name"], app, env, base)
        for _, svc in web
    }
    ports = {  # the generated hosts of other routed ports: (service, port) -> host
        (svc["name"], e["port"]): port_host(svc["name"], e["port"], app, env, base)
        for _, svc in web
        for e in svc.get("port_hosts") or []
        if e.get("generated")
    }
    for i, svc in web:
        own = svc.get("path_prefix") or "/"
        paths = {h: e.get("path") or own for e in svc.get("port_hosts") or [] for h in e["hosts"]}
        rows.append((HostRow(generated[svc["name"]], svc["name"], True), "/body/name", own))
        for entry in svc.get("port_hosts") or []:
            if (host := ports.get((svc["name"], entry["port"]))) is not None:
                rows.append((HostRow(host, svc["name"], True, entry["port"]), "/body/name", entry.get("path") or own))
        mine = {generated[svc["name"]], *(h for (name, _), h in ports.items() if name == svc["name"])}
        for j, domain in enumerate(svc.get("domains") or []):
            loc = f"/body/services/{i}/domains/{j}"
            sibling = domain in {*generated.values(), *ports.values()} and domain not in mine
            if reserved_for_generated(domain, base) and not sibling:
                raise invalid_field(loc, f"host names under {base} are reserved for generated hosts")
            rows.append((HostRow(domain, svc["name"], False), loc, paths.get(domain, own)))
    seen: set[tuple[str, str]] = set()
    for row, loc, path in rows:
        if (row.host, path) in seen:
            where = "" if path == "/" else f" under the path {path}"
            raise invalid_field(loc, f"{row.host} is used twice in this application{where}")
        seen.add((row.host, path))
    claims: dict[str, tuple[HostRow, str]] = {}
    for row, loc, _ in rows:  # one row per host: its generated row first
        if row.host not in claims or (row.generated and not claims[row.host][0].generated):
            claims[row.host] = (row, loc)
    return await _claim_hosts(s, app_id, list(claims.values()))


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
