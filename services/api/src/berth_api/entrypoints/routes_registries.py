"""Routes of image registries: a team's credentials for pulling prebuilt images, and the registry its builds
are pushed to (``push``, at most one per team). Thin: role, input, use
case, answer. The password or token is write-only: no answer carries it. Like every deletion, forgetting
one is for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

from berth_api.domain import names
from berth_api.domain.identity import Principal
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.resources import PathId, Resource, V1Router
from berth_api.entrypoints.schemas import Flag
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import Responses, problem_doc
from berth_api.usecases import registries as uc
from berth_common.catalogue import NAMESPACE_PATTERN
from berth_common.registries import InvalidReferenceError, normalize_host
from berth_common.values import DNS_LABEL_PATTERN

router = V1Router("registries")
CONFLICT: Responses = {
    409: problem_doc("The name is taken, the team has credentials for this host already, or a push registry")
}


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
# What normalize_host accepts, for the OpenAPI: DNS labels (or an IPv4 address) in any case, a port 1-65535.
HOST_PATTERN = rf"^{_LABEL}(?:\.{_LABEL})*(?::{_PORT})?$"

PRINTABLE_PATTERN = names.PRINTABLE_PATTERN  # no control characters (_printable)


def _host(value: str) -> str:
    try:
        return normalize_host(value)
    except InvalidReferenceError as exc:
        raise ValueError(str(exc)) from None


def _printable(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("control characters (newline, tab, ...) are not allowed")
    return value


def _secret(value: SecretStr) -> SecretStr:
    _printable(value.get_secret_value())
    return value


class RegistryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str,
        Field(min_length=1, max_length=63, examples=["ghcr"], json_schema_extra={"pattern": DNS_LABEL_PATTERN}),
        AfterValidator(names.resource_name),
    ]
    host: Annotated[
        str,
        Field(
            min_length=1,
            max_length=255,
            examples=["registry.example.com:5000"],
            description="The registry's host, optionally :port (docker.io for Docker Hub; no scheme, no path)",
            json_schema_extra={"pattern": HOST_PATTERN},
        ),
        AfterValidator(_host),
    ]
    username: Annotated[
        str,
        Field(min_length=1, max_length=255, examples=["deploy"], json_schema_extra={"pattern": PRINTABLE_PATTERN}),
        AfterValidator(_printable),
    ]
    password: Annotated[
        SecretStr,
        Field(
            min_length=1,
            max_length=8192,
            description="A password or an access token; never shown again",
            json_schema_extra={"pattern": PRINTABLE_PATTERN},
        ),
        AfterValidator(_secret),
    ]
    push: Flag = Field(
        default=False,
        description="Push the images built from git here (at most one per team); servers then pull them from here",
    )
    namespace: str | None = Field(
        default=None,
        max_length=200,
        pattern=NAMESPACE_PATTERN,
        examples=["acme"],
        description="The repository path built images go under: <host>/<namespace>/<application> (default berth)",
    )


class RegistryOut(BaseModel):
    id: str
    name: str
    host: str = Field(description="Images whose reference names this host are pulled with these credentials")
    username: str
    push: Flag = Field(default=False, description="The push target of the team's builds", exclude_if=lambda v: not v)
    namespace: str | None = Field(default=None, exclude_if=lambda v: v is None)
    created_at: datetime


class RegistryUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    push: Flag | None = Field(default=None, description="Make it the push target of the team's builds, or not")
    namespace: str | None = Field(
        default=None, max_length=200, pattern=NAMESPACE_PATTERN, description="The repository path built images go under"
    )


registries = Resource(router, RegistryOut)


@router.create(
    "/registries",
    summary="Add credentials for a private image registry (the password or token is never shown again)",
    responses=CONFLICT,
)
async def create_registry(
    body: RegistryCreate, request: Request, principal: Principal = require_role("developer")
) -> RegistryOut:
    given = uc.RegistryInput(
        body.name, body.host, body.username, body.password.get_secret_value(), body.push, body.namespace
    )
    return RegistryOut.model_validate(await uc.create(deps(request), principal, given))


@router.patch(
    "/registries/{registry_id}",
    summary="Make a registry the push target of the team's builds (or not), or change its namespace",
    responses={409: problem_doc("The team has a push registry already")},
)
async def update_registry(
    body: RegistryUpdate, request: Request, registry_id: PathId, principal: Principal = require_role("developer")
) -> RegistryOut:
    values = body.model_dump(exclude_none=True)
    return RegistryOut.model_validate(await uc.update(deps(request), principal, registry_id, values))


registries.listing("/registries", "list_registries", uc.list_all, "The team's image registries")
registries.get("/registries/{registry_id}", "get_registry", uc.get, "An image registry")
registries.delete("/registries/{registry_id}", "delete_registry", uc.delete, "Forget an image registry's credentials")
