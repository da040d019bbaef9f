"""A team's backup destinations: S3-compatible buckets and directories on its servers (or ``local``).

An S3 destination's secret key is sealed at rest (``SecretBox``, bound to the row) and never answered,
logged or put in an event; a backup command carries it sealed for the bus (``S3Destination``). Deleting a
destination a backup schedule uses is refused (409): the schedule would send backups nowhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import SecretStr, ValidationError
from sqlalchemy.exc import IntegrityError

from berth_api.adapters import backups as repo
from berth_api.adapters import drills as drill_repo
from berth_api.adapters import servers as server_repo
from berth_api.adapters.sealed import hold_for_sealing
from berth_api.domain import outbound_checks
from berth_api.domain.applications import row_aad
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field, name_taken, not_in_team
from berth_api.usecases import Deps
from berth_api.usecases.deployments import run
from berth_common.catalogue import DirectoryDestination, S3Destination
from berth_common.db import Unit
from berth_common.envelope import new_id
from berth_common.logging import get_logger

log = get_logger(__name__)
S3_FIELDS = ("endpoint", "bucket", "region", "path_style", "prefix", "access_key", "encrypt")
DIRECTORY_FIELDS = ("server_id", "path", "encrypt")


def destination_missing(principal: Principal, destination_id: str) -> ProblemError:
    return not_in_team("backup destination", destination_id, principal.team_name)


def _aad(destination_id: str) -> str:
    return row_aad("backup_destinations", destination_id)


def _checked(kind: str, settings: dict[str, Any], secret: str | None) -> S3Destination | DirectoryDestination:
    """The catalogue's destination for these settings (its rules once more: 422 naming the field)."""
    try:
        if kind == "s3":
            return S3Destination(**settings, secret_key=SecretStr(secret or ""))
        return DirectoryDestination(**settings)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = "/".join(str(p) for p in error["loc"])
        raise invalid_field(f"/body/{where}" if where else "/body", error["msg"]) from None


def _check_endpoint(deps: Deps, principal: Principal, kind: str, settings: dict[str, Any]) -> None:
    """An S3 endpoint passes the team's outbound rule (422 naming the field and the rule)."""
    if kind == "s3":
        policy = deps.settings.outbound_policy_for(principal.team_id)
        found = outbound_checks.url_refusal(policy, settings["endpoint"])
        if found is not None:
            raise invalid_field("/body/endpoint", found)


async def _server_in_team(session: Any, principal: Principal, settings: dict[str, Any]) -> None:
    server_id = settings.get("server_id", "local")
    if server_id != "local" and await server_repo.get_server(session, principal.team_id, server_id) is None:
        raise invalid_field("/body/server_id", f"no server {server_id} in team {principal.team_name}")


async def create(
    deps: Deps, principal: Principal, name: str, kind: str, settings: dict[str, Any], secret: str | None
) -> dict[str, Any]:
    _checked(kind, settings, secret)
    _check_endpoint(deps, principal, kind, settings)
    destination_id = new_id()
    try:
        async with deps.sessionmaker() as s, s.begin():
            if kind == "directory":
                await _server_in_team(s, principal, settings)
            await hold_for_sealing(s, deps.box)
            sealed = deps.box.seal(secret, _aad(destination_id)) if kind == "s3" and secret else None
            row = await repo.insert_destination(
                s,
                {
                    "id": destination_id,
                    "team_id": principal.team_id,
                    "name": name,
                    "kind": kind,
                    "settings": settings,
                    "sealed": sealed,
                    "created_by": principal.user_id,
                },
            )
    except IntegrityError:
        raise name_taken("backup destination", name) from None
    log.info("backup destination added", destination_id=destination_id, kind=kind, team_id=principal.team_id)
    return row


async def list_all(deps: Deps, principal: Principal) -> list[dict[str, Any]]:
    async with deps.sessionmaker() as s:
        return await repo.list_destinations(s, principal.team_id)


async def get(deps: Deps, principal: Principal, destination_id: str) -> dict[str, Any]:
    async with deps.sessionmaker() as s:
        row = await repo.get_destination(s, principal.team_id, destination_id)
    if row is None:
        raise destination_missing(principal, destination_id)
    return row


async def update(
    deps: Deps,
    principal: Principal,
    destination_id: str,
    values: dict[str, Any],
    secret: str | None,
    then: Callable[[Unit], Awaitable[object]] | None = None,
) -> dict[str, Any]:
    """Change the name, settings of its kind, or the secret key (``secret``); the rest stays. ``then`` runs
    in the same transaction afterwards (``usecases/backups.py``: the schedules that use the destination
    are sent again with the new settings)."""

    async def body(unit: Unit) -> dict[str, Any]:
        s = unit.session
        row = await repo.get_destination(s, principal.team_id, destination_id, sealed=True, lock=True)
        if row is None:
            raise destination_missing(principal, destination_id)
        kind = row["kind"]
        allowed = S3_FIELDS if kind == "s3" else DIRECTORY_FIELDS
        wrong = [k for k in values if k != "name" and k not in allowed]
        if wrong or (secret is not None and kind != "s3"):
            field = wrong[0] if wrong else "secret_key"
            raise invalid_field(f"/body/{field}", f"a {kind} destination has no {field}")
        settings = {**row["settings"], **{k: v for k, v in values.items() if k != "name"}}
        await hold_for_sealing(s, deps.box)
        current = deps.box.open(row["sealed"], _aad(row["id"])) if row["sealed"] is not None else None
        _checked(kind, settings, secret if secret is not None else current)
        _check_endpoint(deps, principal, kind, settings)
        if kind == "directory":
            await _server_in_team(s, principal, settings)
        change: dict[str, Any] = {"settings": settings}
        if "name" in values:
            change["name"] = values["name"]
        if secret is not None:
            change["sealed"] = deps.box.seal(secret, _aad(row["id"]))
        updated = await repo.update_destination(s, row["id"], change)
        if then is not None:
            await then(unit)
        return updated

    try:
        row = await run(deps, body)
    except IntegrityError:
        raise name_taken("backup destination", values.get("name", "")) from None
    log.info("backup destination updated", destination_id=destination_id, fields=sorted(values))
    return row


async def delete(deps: Deps, principal: Principal, destination_id: str) -> None:
    async with deps.sessionmaker() as s, s.begin():
        row = await repo.get_destination(s, principal.team_id, destination_id, lock=True)
        if row is None:
            raise destination_missing(principal, destination_id)
        using = [
            r["database_id"]
            for r in await repo.schedules_of(s, principal.team_id)
            if destination_id in r["destination_ids"]
        ]
        if using:
            raise ProblemError(
                409, f"The backup schedule of database {using[0]} uses this destination; change it first."
            )
        if drilled := await drill_repo.schedules_using(s, principal.team_id, destination_id):
            raise ProblemError(
                409,
                f"The drill schedule of database {drilled[0]['database_id']} uses this destination; change it first.",
            )
        await repo.delete_destination(s, destination_id)
    log.info("backup destination removed", destination_id=destination_id, team_id=principal.team_id)


def name_of(row: dict[str, Any]) -> str:
    """How the scheduler's events name the destination (``S3Destination.name``, ``DirectoryDestination.name``)."""
    settings = row["settings"]
    if row["kind"] == "s3":
        return f"s3:{settings['endpoint'].rstrip('/')}/{settings['bucket']}"
    return f"dir:{settings.get('server_id', 'local')}:{settings['path'].rstrip('/')}"


def wire_destination(deps: Deps, row: dict[str, Any]) -> S3Destination | DirectoryDestination:
    """The destination as a command carries it (``row`` with its sealed secret key; sealed again for the
    bus by the command's serializer)."""
    if row["kind"] == "s3":
        secret = deps.box.open(row["sealed"], _aad(row["id"])) if row["sealed"] is not None else ""
        return S3Destination(
            **row["settings"],
            secret_key=SecretStr(secret),
            outbound_allow=deps.settings.outbound_entries_for(row.get("team_id")),
            outbound_private=deps.settings.outbound_private,
        )
    return DirectoryDestination(**row["settings"])


async def resolve(deps: Deps, session: Any, principal: Principal, ids: list[str], field: str) -> list[dict[str, Any]]:
    """The team's destinations ``ids`` in that order, with their sealed secrets (422 naming one not found)."""
    rows = {r["id"]: r for r in await repo.destinations_with_secrets(session, principal.team_id, ids)}
    for i, destination_id in enumerate(ids):
        if destination_id not in rows:
            raise invalid_field(f"{field}/{i}", f"no backup destination {destination_id} in team {principal.team_name}")
    return [rows[i] for i in ids]
