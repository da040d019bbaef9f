"""The host names an application claims, checked (pure): one generated per web service, one generated per
other routed port of a compose service that asks for it, then the custom domains.

Services with a path prefix (``path_prefix``, compose applications) may share a host under different paths,
a custom one or another service's generated host: the host is claimed once, by the application (its claim
names the service whose generated host it is, else the first service that has it); the other services find
it among their ``domains``. A compose service's other routed port may have a generated host of its own
(``port_hosts`` entry ``generated``: ``hosts.port_host``) and a path of its own: a host is checked once per
path, each under its port's path (a host of another port the service's own port keeps, ``shared_hosts``:
under both paths). A custom domain under the base domain is refused (generated names'), but
for the generated host of another service or port of the application, the service's own given to
another port of it (under another path), or a name in the application's own part of it
(``hosts.own_namespace``: a template's ``db.<generated host>``, ``habitica.<a label ending -<app>-<env>>``,
at any depth; which application holds that part is the hosts' store's to say)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from berth_api.domain.hosts import generated_host, own_namespace, port_host, reserved_for_generated
from berth_api.domain.problems import invalid_field


@dataclass(frozen=True)
class Claim:
    """A host the application claims, for ``service`` (``port``: the other routed port whose generated host
    it is), and where the request gave it (``loc``)."""

    host: str
    service: str
    generated: bool
    port: int | None
    loc: str


def claims(
    services: Sequence[Mapping[str, Any]],
    app: str,
    env: str,
    base: str,
    config_hosts: Mapping[str, str] | None = None,
) -> list[Claim]:
    """The application's claims, one per host (its generated claim first); raises a 422 naming the field for
    a custom domain under the base domain or one host used twice under one path. ``config_hosts``: a
    preview's generated hosts by service, and by ``<service>:<port>`` for other routed ports."""
    rows: list[tuple[Claim, str]] = []
    web = [(i, svc) for i, svc in enumerate(services) if svc["kind"] == "web"]
    generated = {
        svc["name"]: (config_hosts or {}).get(svc["name"]) or generated_host(svc["name"], app, env, base)
        for _, svc in web
    }
    ports = {  # the generated hosts of other routed ports: (service, port) -> host
        (svc["name"], e["port"]): (config_hosts or {}).get(f"{svc['name']}:{e['port']}")
        or port_host(svc["name"], e["port"], app, env, base)
        for _, svc in web
        for e in svc.get("port_hosts") or []
        if e.get("generated")
    }
    for i, svc in web:
        name, own = svc["name"], svc.get("path_prefix") or "/"
        paths = {h: e.get("path") or own for e in svc.get("port_hosts") or [] for h in e["hosts"]}
        rows.append((Claim(generated[name], name, True, None, "/body/name"), own))
        for entry in svc.get("port_hosts") or []:
            if (host := ports.get((name, entry["port"]))) is not None:
                rows.append((Claim(host, name, True, entry["port"], "/body/name"), entry.get("path") or own))
        mine = {generated[name], *(h for (other, _), h in ports.items() if other == name)}
        for j, domain in enumerate(svc.get("domains") or []):
            loc = f"/body/services/{i}/domains/{j}"
            sibling = domain in {*generated.values(), *ports.values()} and domain not in mine
            sibling = sibling or (domain == generated[name] and domain in paths)  # its own, for another port
            sibling = sibling or own_namespace(domain, app, env, base, {*generated.values(), *ports.values()})
            if reserved_for_generated(domain, base) and not sibling:
                raise invalid_field(loc, f"host names under {base} are reserved for generated hosts")
            rows.append((Claim(domain, name, False, None, loc), paths.get(domain, own)))
            if domain in paths and domain in (svc.get("shared_hosts") or []):  # the own port's too
                rows.append((Claim(domain, name, False, None, loc), own))
    seen: set[tuple[str, str]] = set()
    for claim, path in rows:
        if (claim.host, path) in seen:
            where = "" if path == "/" else f" under the path {path}"
            raise invalid_field(claim.loc, f"{claim.host} is used twice in this application{where}")
        seen.add((claim.host, path))
    out: dict[str, Claim] = {}
    for claim, _ in rows:  # one claim per host: its generated claim first
        if claim.host not in out or (claim.generated and not out[claim.host].generated):
            out[claim.host] = claim
    return list(out.values())
