"""A team's image registries: credentials for pulling prebuilt images from private registries, and the
registry builds are pushed to.

One entry per registry host and team (Docker Hub's host names are one host, ``docker.io``). The password
or token is sealed at rest (``SecretBox``, bound to the entry) and never returned, logged or sent in an
event; a deployment of an image on that host carries it in its start command, sealed for the bus like a
secret variable (``berth_common.catalogue.RegistryAuth``), and the scheduler hands it to the engine for the
pull. Another team's entry is a 404 like a missing one.

One entry of a team may be its push target (``push``): a deployment built from git then carries it
(``GitSource.push``, sealed the same way), the builder pushes the image to
``<host>/<namespace>/<application>:<deployment>`` and the scheduler pulls it from there on every server.
Where the image map (``BERTH_IMAGE_MAP``) sends an image to a mirror, the credentials are the ones for the
mirror's host (``berth_common.registries.pull_host``); a build carries the team's credentials for every
host the map sends base images to (``GitSource.base_auths``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters import registries as repo
from berth_api.adapters.sealed import hold_for_sealing
from berth_api.domain import outbound_checks
from berth_api.domain.applications import row_aad
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field, name_taken, not_in_team
from berth_api.usecases import Deps
from berth_common.catalogue import ApplicationSpec, GitSource, ImageSource, PushTarget, RegistryAuth
from berth_common.envelope import new_id
from berth_common.images import image_map
from berth_common.logging import get_logger
from berth_common.registries import InvalidReferenceError, mirror_hosts, pull_host

log = get_logger(__name__)


@dataclass(frozen=True)
class RegistryInput:
    name: str
    host: str  # normalised (``berth_common.registries.normalize_host``)
    username: str
    password: str
    push: bool = False
    namespace: str | None = None

    def __repr__(self) -> str:
        return f"RegistryInput({self.name!r}, {self.host!r}, {self.username!r}, password=**********, push={self.push})"


def registry_missing(principal: Principal, registry_id: str) -> ProblemError:
    return not_in_team("registry", registry_id, principal.team_name)


async def create(deps: Deps, principal: Principal, given: RegistryInput) -> dict[str, Any]:
    if given.host != "docker.io":  # the credentials are sent to this host: the outbound rule applies (422)
        found = outbound_checks.host_refusal(deps.settings.outbound_policy_for(principal.team_id), given.host)
        if found is not None:
            raise invalid_field("/body/host", found)
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
                    "push": given.push,
                    "namespace": given.namespace,
                },
            )
    except IntegrityError as exc:
        if "registries_team_push" in str(exc.orig):
            raise _push_taken() from None
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


async def update(deps: Deps, principal: Principal, registry_id: str, values: dict[str, Any]) -> dict[str, Any]:
    """Make the registry the team's push target or not (``push``), or change its ``namespace``; the
    credentials are changed by adding the registry again."""
    try:
        async with deps.sessionmaker() as s, s.begin():
            if values:
                row = await repo.update_registry(s, principal.team_id, registry_id, values)
            else:
                row = await repo.get_registry(s, principal.team_id, registry_id)
    except IntegrityError:
        raise _push_taken() from None
    if row is None:
        raise registry_missing(principal, registry_id)
    log.info("registry updated", registry_id=registry_id, fields=sorted(values), team_id=principal.team_id)
    return row


def _push_taken() -> ProblemError:
    return invalid_field(
        "/body/push", "the team has a push registry already (unmark it first)", status=409, type_="conflict"
    )


async def delete(deps: Deps, principal: Principal, registry_id: str) -> None:
    """Forget the credentials (deployments already queued keep the ones in their snapshot)."""
    async with deps.sessionmaker() as s, s.begin():
        if not await repo.delete_registry(s, principal.team_id, registry_id):
            raise registry_missing(principal, registry_id)
    log.info("registry removed", registry_id=registry_id, team_id=principal.team_id)


def _auth(deps: Deps, row: dict[str, Any]) -> RegistryAuth:
    password = SecretStr(deps.box.open(row["sealed"], row_aad("registries", row["id"])))
    return RegistryAuth(registry=row["host"], username=row["username"], password=password)


async def with_credentials(deps: Deps, s: AsyncSession, team_id: str, spec: ApplicationSpec) -> ApplicationSpec:
    """The snapshot with the team's credentials: for a prebuilt image, those of the registry it is pulled
    from (after the image map); for a build, the push registry and those of the image map's mirror hosts
    (the caller holds the key lock: the snapshot is sealed in the same transaction). A compose service's
    own image gets those of its registry too."""
    spec = await _service_credentials(deps, s, team_id, spec)
    source = spec.source
    mapping = image_map(deps.settings.image_map, defaults={})
    if isinstance(source, GitSource):
        pushed = await repo.push_registry(s, team_id)
        push = (
            None if pushed is None else PushTarget(auth=_auth(deps, pushed), namespace=pushed["namespace"] or "berth")
        )
        bases = [_auth(deps, r) for r in await repo.credentials_among(s, team_id, mirror_hosts(mapping))]
        return spec.model_copy(update={"source": source.model_copy(update={"push": push, "base_auths": bases})})
    if not isinstance(source, ImageSource):
        return spec
    try:
        host = pull_host(source.image, mapping)
    except InvalidReferenceError:
        return spec
    row = await repo.credentials_for(s, team_id, host)
    auth = None if row is None else _auth(deps, row)
    return spec.model_copy(update={"source": source.model_copy(update={"auth": auth})})


async def _service_credentials(deps: Deps, s: AsyncSession, team_id: str, spec: ApplicationSpec) -> ApplicationSpec:
    """The snapshot with each compose service's own image carrying the team's credentials for its registry."""
    if not any(svc.image is not None for svc in spec.services):
        return spec
    mapping = image_map(deps.settings.image_map, defaults={})
    services = []
    for svc in spec.services:
        own = svc.image
        if own is not None:
            try:
                row = await repo.credentials_for(s, team_id, pull_host(own.image, mapping))
            except InvalidReferenceError:
                row = None
            own = own.model_copy(update={"auth": None if row is None else _auth(deps, row)})
        services.append(svc.model_copy(update={"image": own}))
    return spec.model_copy(update={"services": services})
