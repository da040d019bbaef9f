"""A team's image registries: credentials for pulling prebuilt images from private registries.

One entry per registry host and team (Docker Hub's host names are one host, ``docker.io``). The password
or token is sealed at rest (``SecretBox``, bound to the entry) and never returned, logged or sent in an
event; a deployment of an image on that host carries it in its start command, sealed for the bus like a
secret variable (``berth_common.catalogue.RegistryAuth``), and the scheduler hands it to the engine for the
pull. Another team's entry is a 404 like a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters import registries as repo
from berth_api.adapters.sealed import hold_for_sealing
from berth_api.domain.applications import row_aad
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field, name_taken, not_in_team
from berth_api.usecases import Deps
from berth_common.catalogue import ApplicationSpec, ImageSource, RegistryAuth
from berth_common.envelope import new_id
from berth_common.logging import get_logger
from berth_common.registries import InvalidReferenceError, registry_of

log = get_logger(__name__)


@dataclass(frozen=True)
class RegistryInput:
    name: str
    host: str  # normalised (``berth_common.registries.normalize_host``)
    username: str
    password: str

    def __repr__(self) -> str:
        return f"RegistryInput({self.name!r}, {self.host!r}, {self.username!r}, password=**********)"


def registry_missing(principal: Principal, registry_id: str) -> ProblemError:
    return not_in_team("registry", registry_id, principal.team_name)


async def create(deps: Deps, principal: Principal, given: RegistryInput) -> dict[str, Any]:
    registry_id = new_id()
    try:
        async with deps.sessionmaker() as s, s.begin():
            await hold_for_sealing(s, deps.box)
            row = await repo.insert_registry(
                s,
                {
                    "id": registry_id,
                    "team_id": principal.team_id,
                    "name": given.name,
                    "host": given.host,
                    "username": given.username,
                    "sealed": deps.box.seal(given.password, row_aad("registries", registry_id)),
                    "created_by": principal.user_id,
                },
            )
    except IntegrityError as exc:
        if "registries_team_host" in str(exc.orig):
            raise invalid_field(
                "/body/host", f"the team has credentials for {given.host} already", status=409, type_="conflict"
            ) from None
        raise name_taken("registry", given.name) from None
    log.info("registry added", registry_id=registry_id, host=given.host, team_id=principal.team_id)
    return row


async def list_all(deps: Deps, principal: Principal) -> list[dict[str, Any]]:
    async with deps.sessionmaker() as s:
        return await repo.list_registries(s, principal.team_id)


async def get(deps: Deps, principal: Principal, registry_id: str) -> dict[str, Any]:
    async with deps.sessionmaker() as s:
        row = await repo.get_registry(s, principal.team_id, registry_id)
    if row is None:
        raise registry_missing(principal, registry_id)
    return row


async def delete(deps: Deps, principal: Principal, registry_id: str) -> None:
    """Forget the credentials (deployments already queued keep the ones in their snapshot)."""
    async with deps.sessionmaker() as s, s.begin():
        if not await repo.delete_registry(s, principal.team_id, registry_id):
            raise registry_missing(principal, registry_id)
    log.info("registry removed", registry_id=registry_id, team_id=principal.team_id)


async def with_credentials(deps: Deps, s: AsyncSession, team_id: str, spec: ApplicationSpec) -> ApplicationSpec:
    """The snapshot with the team's credentials for its image's registry, if it has some (the caller holds
    the key lock: the snapshot is sealed in the same transaction)."""
    source = spec.source
    if not isinstance(source, ImageSource):
        return spec
    try:
        host = registry_of(source.image)
    except InvalidReferenceError:
        return spec
    row = await repo.credentials_for(s, team_id, host)
    if row is None:
        return spec.model_copy(update={"source": source.model_copy(update={"auth": None})})
    password = SecretStr(deps.box.open(row["sealed"], row_aad("registries", row["id"])))
    auth = RegistryAuth(registry=host, username=row["username"], password=password)
    return spec.model_copy(update={"source": source.model_copy(update={"auth": auth})})
