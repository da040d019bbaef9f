"""Private repositories: an application's deploy key (an ed25519 pair Berth makes; the private key sealed,
the public key shown with its fingerprint; rotate, delete), its access token (sealed, write-only), and
the SSH host keys pinned for its git server.

A host key is pinned at first contact (the builder, which reaches the forge, reads the keys the server
presents: ``usecases.git_auth``), at the first deployment or compose read that needs it or when asked
(``scan``), or given by a user. Once pinned, a server presenting another key is refused by the builder
until an admin accepts the new key by its fingerprint (``accept``). Every pin says where it came from and
when.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters import applications as apps_repo
from berth_api.adapters import git_credentials as repo
from berth_api.domain import git_access as domain
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field, not_in_team
from berth_api.usecases import Deps, git_auth
from berth_api.usecases.applications import application_missing, refuse_if_removing
from berth_common import ssh_keys
from berth_common.catalogue.git_auth import HostKey
from berth_common.logging import get_logger

log = get_logger(__name__)
WHAT = {domain.DEPLOY_KEY: "deploy key", domain.TOKEN: "access token"}


def missing(principal: Principal, application_id: str, kind: str) -> ProblemError:
    return not_in_team(f"{WHAT[kind]} of application", application_id, principal.team_name)


async def _application(
    s: AsyncSession, principal: Principal, application_id: str, lock: bool = False
) -> dict[str, Any]:
    app = await apps_repo.get_application(s, principal.team_id, application_id, lock=lock)
    if app is None:
        raise application_missing(principal, application_id)
    return app


async def _shown_key(s: AsyncSession, app: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    repository = domain.repository_of(app["config"])
    rows = await repo.host_keys(s, app["id"])
    pins = [domain.shown_host_key(r) for r in rows if not r["offered"]]
    offered = [domain.shown_host_key(r) for r in rows if r["offered"]]
    return {
        "application_id": app["id"],
        "public_key": row["public_key"],
        "fingerprint": ssh_keys.fingerprint(row["public_key"]),
        "created_at": row["created_at"],
        "rotated_at": row["rotated_at"],
        "repository": repository,
        "ssh_server": domain.ssh_server(repository),
        "host_keys": pins,
        "offered_host_keys": offered,
    }


async def _key_row(s: AsyncSession, principal: Principal, application_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    app = await _application(s, principal, application_id)
    row = await repo.credential(s, principal.team_id, application_id, domain.DEPLOY_KEY)
    if row is None:
        raise missing(principal, application_id, domain.DEPLOY_KEY)
    return app, row


async def access(deps: Deps, principal: Principal, application_id: str) -> dict[str, Any]:
    """What the application authenticates to its repository with: its deploy key (public key, fingerprint,
    pinned host keys) and its token (user name, dates), each None when it has none; never a secret."""
    async with deps.sessionmaker() as s:
        app = await _application(s, principal, application_id)
        key = await repo.credential(s, principal.team_id, application_id, domain.DEPLOY_KEY)
        found = await repo.credential(s, principal.team_id, application_id, domain.TOKEN)
        repository = domain.repository_of(app["config"])
        return {
            "application_id": application_id,
            "repository": repository,
            "uses": domain.kind_for(repository),
            "deploy_key": None if key is None else await _shown_key(s, app, key),
            "token": None if found is None else _shown_token(found),
        }


async def _new_key(
    deps: Deps, principal: Principal, application_id: str, *, rotate: bool, host_keys: Sequence[str] = ()
) -> dict[str, Any]:
    private, public = ssh_keys.generate_key_pair()
    async with deps.sessionmaker() as s, s.begin():
        app = await _application(s, principal, application_id, lock=True)
        refuse_if_removing(app)
        if host_keys:
            await _first_pins(s, principal, app, host_keys)
        row = await repo.credential(s, principal.team_id, application_id, domain.DEPLOY_KEY)
        if row is None and rotate:
            raise missing(principal, application_id, domain.DEPLOY_KEY)
        if row is not None and not rotate:
            raise ProblemError(409, f"Application {application_id} already has a deploy key: rotate or delete it.")
        shown = {"public_key": f"{' '.join(public.split()[:2])} berth-{application_id}"}
        row = await git_auth.store(deps, s, principal, application_id, domain.DEPLOY_KEY, row, private, shown)
        shown = await _shown_key(s, app, row)
    log.info("deploy key rotated" if rotate else "deploy key created", application_id=application_id)
    return shown


async def create_deploy_key(
    deps: Deps, principal: Principal, application_id: str, host_keys: Sequence[str] = ()
) -> dict[str, Any]:
    """A new ed25519 pair for the application; its public key goes to the forge as a read-only deploy key.
    ``host_keys``: the server's keys to pin with it (first contact only, as at the application's creation)."""
    return await _new_key(deps, principal, application_id, rotate=False, host_keys=host_keys)


async def _first_pins(s: AsyncSession, principal: Principal, app: dict[str, Any], lines: Sequence[str]) -> None:
    """Pin the host keys given with a new deploy key, when none is pinned for the server yet: replacing a
    pinned key is an admin's (``pin_host_keys``), as accepting a changed one is."""
    _, host = _server(app, "/body/host_keys")
    try:
        keys = domain.given_keys(lines, host)
    except ValueError as exc:
        raise invalid_field("/body/host_keys", str(exc)) from None
    if domain.pins_for(await repo.host_keys(s, app["id"]), host):
        raise ProblemError(
            409, f"Host keys are pinned for {host} already: an admin replaces them (PUT .../deploy-key/host-keys)."
        )
    await repo.pin(s, app["id"], host, git_auth.pins(keys, "given", principal.user_id))


async def rotate_deploy_key(deps: Deps, principal: Principal, application_id: str) -> dict[str, Any]:
    """A new pair replacing the old one at once (the new public key must be added to the forge)."""
    return await _new_key(deps, principal, application_id, rotate=True)


async def delete_deploy_key(deps: Deps, principal: Principal, application_id: str) -> None:
    """Delete the deploy key and the host keys pinned with it."""
    async with deps.sessionmaker() as s, s.begin():
        _, row = await _key_row(s, principal, application_id)
        await repo.delete_credential(s, row["id"])
        await repo.unpin_all(s, application_id)
    log.info("deploy key deleted", application_id=application_id)


def _server(app: dict[str, Any], loc: str = "/body") -> tuple[str, str]:
    repository = domain.repository_of(app["config"])
    host = domain.ssh_server(repository)
    if repository is None or host is None:
        raise invalid_field(loc, "host keys are for an application whose repository is an ssh:// or user@host:path URL")
    return repository, host


async def pin_host_keys(deps: Deps, principal: Principal, application_id: str, lines: Sequence[str]) -> dict[str, Any]:
    """Pin the host keys a user gives for the repository's server (replacing what was pinned for it)."""
    async with deps.sessionmaker() as s, s.begin():
        app, row = await _key_row(s, principal, application_id)
        _, host = _server(app)
        try:
            keys = domain.given_keys(lines, host)
        except ValueError as exc:
            raise invalid_field("/body/host_keys", str(exc)) from None
        await repo.pin(s, application_id, host, git_auth.pins(keys, "given", principal.user_id))
        shown = await _shown_key(s, app, row)
    log.info("host keys given", application_id=application_id, host=host)
    return shown


def _fingerprints(keys: Sequence[HostKey]) -> str:
    return ", ".join(f"{k.key_type} {domain.fingerprint(k.key_type, k.key)}" for k in keys)


async def scan_host_keys(deps: Deps, principal: Principal, application_id: str) -> dict[str, Any]:
    """First contact: pin the keys the server presents when none is pinned for it. When some are and the
    server presents others, they are recorded as offered (shown) and the answer is a 409: an admin accepts
    them by fingerprint."""
    async with deps.sessionmaker() as s:
        app, _ = await _key_row(s, principal, application_id)
        repository, host = _server(app)
    keys = await git_auth.offered(deps, repository, principal.team_id)
    changed = False
    async with deps.sessionmaker() as s, s.begin():
        app, row = await _key_row(s, principal, application_id)
        pinned = domain.pins_for(await repo.host_keys(s, application_id), host)
        if not pinned:
            await repo.pin(s, application_id, host, git_auth.pins(keys, "first-contact", principal.user_id))
            log.info("host keys pinned at first contact", application_id=application_id, host=host)
        elif set(pinned) & set(keys):
            await repo.offer(s, application_id, host, [])
        else:
            await repo.offer(s, application_id, host, git_auth.pins(keys, "offered", None))
            changed = True
        shown = await _shown_key(s, app, row)
    if changed:
        log.warning("git server presents another host key", application_id=application_id, host=host)
        raise ProblemError(
            409,
            f"The SSH server {host} presents host keys other than the pinned ones ({_fingerprints(keys)}). "
            "If the forge changed its key, an admin accepts the new one by its fingerprint.",
            slug="host-key-changed",
        )
    return shown


async def accept_host_key(deps: Deps, principal: Principal, application_id: str, fingerprint: str) -> dict[str, Any]:
    """Pin the keys the server offered at the last scan in place of the pinned ones, when the key named by
    ``fingerprint`` is among them."""
    async with deps.sessionmaker() as s, s.begin():
        app, row = await _key_row(s, principal, application_id)
        _, host = _server(app)
        offered = domain.pins_for(await repo.host_keys(s, application_id), host, offered=True)
        if not offered:
            raise ProblemError(
                409,
                f"The SSH server {host} has not offered another host key: scan it first.",
                slug="host-key-not-offered",
            )
        if fingerprint not in {domain.fingerprint(k.key_type, k.key) for k in offered}:
            raise ProblemError(
                409,
                f"The SSH server {host} did not offer a key with fingerprint {fingerprint} (it offered: "
                f"{_fingerprints(offered)}).",
                slug="host-key-not-offered",
            )
        await repo.pin(s, application_id, host, git_auth.pins(offered, "accepted", principal.user_id))
        shown = await _shown_key(s, app, row)
    log.info("host key accepted", application_id=application_id, host=host, fingerprint=fingerprint)
    return shown


def _shown_token(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("application_id", "username", "created_at", "rotated_at")}


async def set_token(deps: Deps, principal: Principal, application_id: str, username: str, value: str) -> dict[str, Any]:
    """Store (or replace) the application's access token for https:// repositories, sealed."""
    async with deps.sessionmaker() as s, s.begin():
        app = await _application(s, principal, application_id, lock=True)
        refuse_if_removing(app)
        row = await repo.credential(s, principal.team_id, application_id, domain.TOKEN)
        shown = {"username": username}
        row = await git_auth.store(deps, s, principal, application_id, domain.TOKEN, row, value, shown)
    log.info("git token stored", application_id=application_id)
    return _shown_token(row)


async def delete_token(deps: Deps, principal: Principal, application_id: str) -> None:
    async with deps.sessionmaker() as s, s.begin():
        await _application(s, principal, application_id)
        row = await repo.credential(s, principal.team_id, application_id, domain.TOKEN)
        if row is None:
            raise missing(principal, application_id, domain.TOKEN)
        await repo.delete_credential(s, row["id"])
    log.info("git token deleted", application_id=application_id)
