"""A team's servers: adding one over SSH, validating it, accepting a changed host key, forgetting it.

Carries out ``evt.server.validated`` (the scheduler's answer to ``cmd.server.validate``, which adding and
re-validating send through the outbox in the same transaction as the row). The private key is given or
generated here (ed25519; then the public key is shown to install in ``authorized_keys``), sealed at rest
with the api's key (``SecretBox``, bound to the server) and sent sealed for the bus; no answer, log or
event carries it. The host key is pinned from the first validation's answer; later validations accept
only it, and a changed key is shown (``offered_host_key_fingerprint``) until an admin accepts it by
fingerprint. Another team's server is a 404 like a missing one. The control plane's own engine is the
built-in server ``local``, owned by the platform: listed for every team, never changed or removed here. A
server is shown with the applications placed on it, and removed only when none is (409 naming them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from berth_api.adapters import servers as repo
from berth_api.adapters.sealed import hold_for_sealing
from berth_api.adapters.secretbox import SecretBox
from berth_api.domain.applications import row_aad
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field, name_taken, not_in_team
from berth_api.usecases import Deps
from berth_api.usecases.deployments import run
from berth_api.usecases.placements import naming, placed
from berth_common import sealing, ssh_keys
from berth_common.catalogue import ServerChanged, ServerValidated, ValidateServer, sealed_key_aad
from berth_common.db import Unit
from berth_common.envelope import new_id
from berth_common.logging import get_logger

log = get_logger(__name__)
LOCAL_ID = "local"


@dataclass(frozen=True)
class ServerInput:
    name: str
    host: str
    port: int
    user: str
    private_key: str | None  # None: Berth generates a key pair

    def __repr__(self) -> str:
        return f"ServerInput({self.name!r}, {self.user}@{self.host}:{self.port}, private_key=**********)"


def server_missing(principal: Principal, server_id: str) -> ProblemError:
    return not_in_team("server", server_id, principal.team_name)


def local_server() -> dict[str, Any]:
    """The built-in server: the control plane's own Docker engine."""
    return {"id": LOCAL_ID, "name": LOCAL_ID, "builtin": True, "state": "ready", "checks": [], "reason": ""}


def _refuse_local(server_id: str, what: str) -> None:
    if server_id == LOCAL_ID:
        raise ProblemError(409, f"The built-in server 'local' (the control plane's own engine) cannot be {what}.")


async def _send_validation(deps: Deps, unit: Unit, row: dict[str, Any], private_key: str) -> None:
    command = ValidateServer(
        server_id=row["id"],
        team_id=row["team_id"],
        host=row["host"],
        port=row["port"],
        user=row["user"],
        private_key=sealing.seal(private_key, sealed_key_aad(row["id"])),
        host_key=row["host_key"],
        attempt=row["attempt"],
    )
    await unit.emit(command, id=f"server-validate-{row['id']}-{row['attempt']}")


async def announce(box: SecretBox, unit: Unit, server_id: str, *, removed: bool = False) -> None:
    """Send ``evt.server.changed`` with the server as the row now has it (its key sealed for the bus), in the
    transaction that changed it: the services that work on servers keep their directory from it."""
    row = await repo.next_revision(unit.session, server_id)
    if row is None:
        return
    private_key = box.open(row["sealed"], row_aad("servers", server_id))
    changed = ServerChanged(
        server_id=server_id,
        team_id=row["team_id"],
        name=row["name"],
        host=row["host"],
        port=row["port"],
        user=row["user"],
        private_key=None if removed else sealing.seal(private_key, sealed_key_aad(server_id)),
        host_key=row["host_key"],
        state="removed" if removed else row["state"],
        revision=row["revision"],
    )
    await unit.emit(changed, id=f"server-changed-{server_id}-{row['revision']}")


async def create(deps: Deps, principal: Principal, given: ServerInput) -> dict[str, Any]:
    if given.private_key is None:
        private_key, public_key = ssh_keys.generate_key_pair()
    else:
        private_key = given.private_key.strip() + "\n"
        try:
            public_key = ssh_keys.public_key_of(private_key)
        except ssh_keys.KeyProblem as exc:
            raise invalid_field("/body/private_key", str(exc)) from None
    server_id = new_id()

    async def body(unit: Unit) -> dict[str, Any]:
        await hold_for_sealing(unit.session, deps.box)
        row = await repo.insert_server(
            unit.session,
            {
                "id": server_id,
                "team_id": principal.team_id,
                "name": given.name,
                "host": given.host,
                "port": given.port,
                "user": given.user,
                "sealed": deps.box.seal(private_key, row_aad("servers", server_id)),
                "public_key": public_key,
                "checks": [],
                "created_by": principal.user_id,
            },
        )
        await _send_validation(deps, unit, row, private_key)
        await announce(deps.box, unit, server_id)
        return row

    try:
        row = await run(deps, body)
    except IntegrityError:
        raise name_taken("server", given.name) from None
    log.info("server added", server_id=server_id, host=given.host, team_id=principal.team_id)
    return row


async def list_all(deps: Deps, principal: Principal) -> list[dict[str, Any]]:
    async with deps.sessionmaker() as s:
        return [local_server(), *await repo.list_servers(s, principal.team_id)]


async def get(deps: Deps, principal: Principal, server_id: str) -> dict[str, Any]:
    if server_id == LOCAL_ID:
        return local_server()
    async with deps.sessionmaker() as s:
        row = await repo.get_server(s, principal.team_id, server_id)
        if row is None:
            raise server_missing(principal, server_id)
        return {**row, "placed": await placed(s, principal.team_id, server_id)}


async def _revalidate(deps: Deps, unit: Unit, principal: Principal, server_id: str, **changes: Any) -> dict[str, Any]:
    row = await repo.get_server(unit.session, principal.team_id, server_id, with_key=True, lock=True)
    if row is None:
        raise server_missing(principal, server_id)
    row = {**row, **changes, "attempt": row["attempt"] + 1}
    state = "draining" if row["state"] == "draining" else "validating"  # a drained server stays drained
    values = {**changes, "attempt": row["attempt"], "state": state, "reason": ""}
    updated = await repo.update_server(unit.session, server_id, values)
    await _send_validation(deps, unit, row, deps.box.open(row["sealed"], row_aad("servers", server_id)))
    await announce(deps.box, unit, server_id)
    return updated


async def validate(deps: Deps, principal: Principal, server_id: str) -> dict[str, Any]:
    _refuse_local(server_id, "validated here")

    async def body(unit: Unit) -> dict[str, Any]:
        return await _revalidate(deps, unit, principal, server_id)

    return await run(deps, body)


async def accept_host_key(deps: Deps, principal: Principal, server_id: str, fingerprint: str) -> dict[str, Any]:
    """Pin the host key the server offered at the last validation (named by its fingerprint), validate again."""
    _refuse_local(server_id, "changed")

    async def body(unit: Unit) -> dict[str, Any]:
        row = await repo.get_server(unit.session, principal.team_id, server_id, lock=True)
        if row is None:
            raise server_missing(principal, server_id)
        offered = row["offered_host_key"]
        if offered is None:
            raise ProblemError(409, f"Server {row['name']} has not offered another host key: there is none to accept.")
        if ssh_keys.fingerprint(offered) != fingerprint:
            raise invalid_field(
                "/body/fingerprint",
                f"not the fingerprint of the key the server offered ({ssh_keys.fingerprint(offered)})",
            )
        log.info("server host key accepted", server_id=server_id, fingerprint=fingerprint)
        return await _revalidate(deps, unit, principal, server_id, host_key=offered, offered_host_key=None)

    return await run(deps, body)


async def delete(deps: Deps, principal: Principal, server_id: str) -> None:
    """Forget a server; refused (409, naming them) while applications are placed on it: their desired
    state, a running deployment or the live one names it (drain it first)."""
    _refuse_local(server_id, "removed")

    async def body(unit: Unit) -> None:
        row = await repo.get_server(unit.session, principal.team_id, server_id, lock=True)
        if row is None:
            raise server_missing(principal, server_id)
        apps = await placed(unit.session, principal.team_id, server_id)
        if apps:
            raise ProblemError(
                409,
                f"Server {row['name']} still runs applications: {naming(apps)}. "
                f"Drain it (POST /v1/servers/{server_id}/drain) or place them elsewhere first.",
            )
        await announce(deps.box, unit, server_id, removed=True)
        await repo.delete_server(unit.session, principal.team_id, server_id)

    await run(deps, body)
    log.info("server removed", server_id=server_id, team_id=principal.team_id)


async def on_validated(box: SecretBox, msg: ServerValidated, unit: Unit) -> None:
    """Show what the scheduler found; pin the host key at first contact. An answer to an older attempt
    (the server was validated again meanwhile) or for a server removed since is ignored."""
    row = await repo.lock_for_answer(unit.session, msg.server_id, msg.team_id)
    if row is None or row["attempt"] != msg.attempt:
        log.info("stale server validation ignored", server_id=msg.server_id, attempt=msg.attempt)
        return
    values: dict[str, Any] = {
        "state": msg.state,
        "reason": msg.reason,
        "checks": [c.model_dump() for c in msg.checks],
        "docker_version": msg.docker_version,
        "architecture": msg.architecture,
        "free_bytes": msg.free_bytes,
        "offered_host_key": msg.offered_host_key,
        "validated_at": datetime.now(UTC),
    }
    if row["state"] == "draining":
        values["state"] = "draining"  # what validation found is in the checks; no placement goes there
    if row["host_key"] is None and msg.host_key is not None:
        values["host_key"] = msg.host_key
    await repo.update_server(unit.session, msg.server_id, values)
    await announce(box, unit, msg.server_id)
    log.info("server validation recorded", server_id=msg.server_id, state=msg.state)
