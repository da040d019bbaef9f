"""Routes of servers: add one over SSH (with a key given or generated), see what validation found and
what is placed on it, validate again, accept a changed host key, drain one, forget one. Thin: role, input, use case, answer. The private key
is write-only: no answer carries it. Servers hold keys to whole machines: changing them is for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Path, Request, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

from berth_api.domain import names
from berth_api.domain.identity import Principal
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.resources import Resource, V1Router
from berth_api.entrypoints.schemas import Flag
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import Responses, problem_doc
from berth_api.usecases import drain
from berth_api.usecases import servers as uc
from berth_common import ssh_keys
from berth_common.values import DNS_LABEL_PATTERN, MAX_HOST, SSH_USER_PATTERN, server_address

router = V1Router("servers", {404: problem_doc("No such server in this team")})
CONFLICT: Responses = {409: problem_doc("The name is taken, or the built-in server cannot be changed")}
SERVER_ID_PATTERN = r"^(local|[0-9a-f]{32})$"
ServerId = Annotated[str, Path(pattern=SERVER_ID_PATTERN)]
FINGERPRINT_PATTERN = r"^SHA256:[A-Za-z0-9+/]{43}$"
Out = TypeVar("Out", bound=BaseModel)


def _key(value: SecretStr | None) -> SecretStr | None:
    if value is not None and any(ord(c) < 32 and c not in "\r\n\t" for c in value.get_secret_value()):
        raise ValueError("control characters other than line breaks are not allowed")
    return value


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# What server_address accepts, for the OpenAPI: a host name in any case (an IPv4 address is one), or IPv6.
SERVER_ADDRESS: dict[str, Any] = {"anyOf": [{"pattern": rf"^{_LABEL}(?:\.{_LABEL})*$"}, {"format": "ipv6"}]}


class ServerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str,
        Field(min_length=1, max_length=63, examples=["web-1"], json_schema_extra={"pattern": DNS_LABEL_PATTERN}),
        AfterValidator(names.resource_name),
    ]
    host: Annotated[
        str,
        Field(
            min_length=1,
            max_length=MAX_HOST,
            examples=["203.0.113.7"],
            description="Host name or IP address",
            json_schema_extra=SERVER_ADDRESS,
        ),
        AfterValidator(server_address),
    ]
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(default="root", pattern=SSH_USER_PATTERN, max_length=32, description="The SSH user")
    private_key: Annotated[
        SecretStr | None,
        Field(
            default=None,
            max_length=20000,
            description="An SSH private key (OpenSSH or PEM, no passphrase); never shown again. "
            "Leave it out to have Berth generate an ed25519 key pair and show the public key to install",
        ),
        AfterValidator(_key),
    ]


class HostKeyAccept(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fingerprint: str = Field(pattern=FINGERPRINT_PATTERN, description="The offered key's SHA-256 fingerprint")


class PlacedOut(BaseModel):
    application_id: str
    name: str
    services: list[str]


class CheckOut(BaseModel):
    name: str
    ok: Flag
    detail: str


class ServerOut(BaseModel):
    id: str
    name: str
    builtin: Flag = Field(default=False, description="The control plane's own engine (owned by the platform)")
    host: str | None = None
    port: int | None = None
    user: str | None = None
    public_key: str | None = Field(default=None, description="Install it in the user's ~/.ssh/authorized_keys")
    host_key_fingerprint: str | None = Field(default=None, description="The pinned host key (first contact)")
    offered_host_key_fingerprint: str | None = Field(
        default=None, description="A different host key the server showed: accept it only if you expected it"
    )
    state: Literal["validating", "ready", "unreachable", "invalid", "draining"]
    reason: str = Field(default="", description="What to fix when the server is not ready")
    checks: list[CheckOut] = []
    docker_version: str | None = None
    architecture: str | None = None
    free_bytes: int | None = None
    validated_at: datetime | None = None
    created_at: datetime | None = None
    placed: list[PlacedOut] | None = Field(
        default=None,
        description="The applications placed on it (read one server to see them; empty: it can be removed)",
    )


class DrainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: list[Annotated[str, Field(min_length=1, max_length=63)]] = Field(
        default=[],
        max_length=32,
        description="Servers (ids or names, `local`) that take its place; default: each service's other "
        "servers, or `local` when it has none",
    )
    abandon_volume_data: bool = Field(
        default=False,
        description="Move the services with named volumes without their data: the volumes start empty on the "
        "servers taking its place (the deployment's log says so) and stay as they are on the drained server. "
        "Without it, the data is copied first, and a drain of a server that does not answer fails naming each "
        "volume and the server",
    )


class KeptVolumeOut(BaseModel):
    application_id: str
    name: str = Field(description="The application's name")
    volume: str = Field(description="The named volume")
    docker_name: str = Field(description="The Docker volume left on the drained server")


class DrainOut(ServerOut):
    deployments: list[str] = Field(default=[], description="The deployments started to move its applications")
    volumes_kept: list[KeptVolumeOut] = Field(
        default=[],
        description="Named volumes that stay on the drained server: their data is copied to the servers taking "
        "its place before the service starts there (not with `abandon_volume_data`); the volumes themselves are "
        "never deleted implicitly",
    )


def server_out(row: dict[str, Any]) -> ServerOut:
    return _out(ServerOut, row)


def _out(model: type[Out], row: dict[str, Any]) -> Out:
    data = {k: v for k, v in row.items() if k in model.model_fields}
    if "placed" in row:
        data["placed"] = [{"application_id": p.application_id, "name": p.name, "services": p.services}
                          for p in row["placed"]]  # fmt: skip
    if row.get("host_key"):
        data["host_key_fingerprint"] = ssh_keys.fingerprint(row["host_key"])
    if row.get("offered_host_key"):
        data["offered_host_key_fingerprint"] = ssh_keys.fingerprint(row["offered_host_key"])
    return model.model_validate(data)


servers = Resource(router, ServerOut, server_out, SERVER_ID_PATTERN)


@router.create(
    "/servers",
    summary="Add a server reached over SSH; it is validated at once (state: validating, then the result)",
    responses=CONFLICT,
)
async def create_server(
    body: ServerCreate, request: Request, principal: Principal = require_role("admin")
) -> ServerOut:
    key = body.private_key.get_secret_value() if body.private_key is not None else None
    given = uc.ServerInput(body.name, body.host, body.port, body.user, key)
    return server_out(await uc.create(deps(request), principal, given))


servers.listing("/servers", "list_servers", uc.list_all, "The team's servers, the built-in one first")
servers.get("/servers/{server_id}", "get_server", uc.get, "A server")
servers.action(
    "POST",
    "/servers/{server_id}/validate",
    "validate_server",
    uc.validate,
    "Validate a server again (state: validating, then the result)",
    role="admin",
    status_code=status.HTTP_202_ACCEPTED,
    responses=CONFLICT,
)


@router.start(
    "/servers/{server_id}/host-key",
    operation_id="accept_server_host_key",
    summary="Accept the new host key a server offered (named by its fingerprint), then validate again",
    responses={409: problem_doc("No other host key was offered, or the built-in server")},
)
async def accept_host_key(
    body: HostKeyAccept, request: Request, server_id: ServerId, principal: Principal = require_role("admin")
) -> ServerOut:
    return server_out(await uc.accept_host_key(deps(request), principal, server_id, body.fingerprint))


@router.start(
    "/servers/{server_id}/drain",
    summary="Drain a server: no new placement there; its applications are deployed to other servers",
    responses={409: problem_doc("The built-in server cannot be drained")},
)
async def drain_server(
    request: Request, server_id: ServerId, body: DrainIn | None = None, principal: Principal = require_role("admin")
) -> DrainOut:
    body = body or DrainIn()
    d = await drain.drain(deps(request), principal, server_id, body.to, abandon_volume_data=body.abandon_volume_data)
    return _out(DrainOut, {**d, "volumes_kept": [vars(k) for k in d["volumes_kept"]]})


servers.delete(
    "/servers/{server_id}",
    "delete_server",
    uc.delete,
    "Forget a server and its key; refused while applications are placed on it",
    {409: problem_doc("Applications are placed on it (named), or the built-in server")},
)
