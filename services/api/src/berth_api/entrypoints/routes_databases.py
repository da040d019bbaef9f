"""Routes of one-click databases and of applications' links to them. Thin: role, input, use case, answer.

No answer carries a password: ``GET /v1/databases/{id}/connection`` reveals the connection URL to the
team's admins and is audited. Creating, starting, stopping and restarting are for developers; rotating
credentials, revealing the URL, deleting and unlinking are for admins.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path, Query, Request, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from berth_api.domain import names
from berth_api.domain.identity import Principal
from berth_api.entrypoints.audit import record_read
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.resources import Resource, V1Router
from berth_api.entrypoints.schemas import ID_PATTERN, Flag
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import Responses, problem_doc
from berth_api.usecases import databases as uc
from berth_api.usecases import links
from berth_common import dbengines
from berth_common.catalogue import cidr
from berth_common.values import ENV_NAME_PATTERN, SLUG_PATTERN

router = V1Router("databases", {404: problem_doc("No such database in this team")})
CONFLICT: Responses = {409: problem_doc("The name or the public port is taken, or a rotation or removal runs")}
DatabaseId = Annotated[str, Path(pattern=ID_PATTERN)]


def _cidrs(value: list[str]) -> list[str]:
    return [cidr(v) for v in value]


class LimitsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cpus: float | None = Field(default=None, gt=0, le=512, description="CPU cores")
    memory_mb: int | None = Field(default=None, ge=6, le=4_194_304, description="Memory limit in MiB")


class PublicIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    port: int = Field(ge=1024, le=65535, description="The port published on the server's addresses")
    allow: Annotated[
        list[str],
        Field(min_length=1, max_length=64, examples=[["203.0.113.0/24"]], description="Client addresses (CIDR)"),
        AfterValidator(_cidrs),
    ]


class DatabaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str,
        Field(min_length=1, max_length=32, examples=["orders"], json_schema_extra={"pattern": SLUG_PATTERN}),
        AfterValidator(names.slug),
    ]
    engine: dbengines.EngineName = Field(examples=["postgresql"])
    version: str | None = Field(
        default=None,
        max_length=16,
        examples=["15"],
        description="One of the engine's versions (its default if left out)",
    )
    server_id: str = Field(default="local", pattern=r"^(local|[0-9a-f]{32})$", description="Where it runs")
    limits: LimitsIn = LimitsIn()
    config: dict[str, str] = Field(
        default_factory=dict,
        max_length=64,
        examples=[{"max_connections": "200"}],
        description="Engine parameters from an allow-list (PostgreSQL -c name=value, MariaDB/MySQL options, Redis)",
    )
    public: PublicIn | None = Field(default=None, description="Off unless given: a published port and an allow-list")


class PublicOut(BaseModel):
    port: int
    allow: list[str]


class LastOut(BaseModel):
    id: str
    state: str
    finished_at: datetime | None = None


class DatabaseOut(BaseModel):
    id: str
    name: str
    engine: str
    version: str
    server_id: str
    state: str
    reason: str = ""
    host: str = Field(description="The private host name the team's applications reach it by")
    port: int = Field(description="Its port on that host name")
    variable: str = Field(description="The variable a link sets by default")
    user: str
    database: str
    config: dict[str, str]
    limits: LimitsIn
    public: PublicOut | None = None
    published_port: int | None = Field(default=None, description="The port published on the server, if any")
    rotation_pending: Flag = False
    rotated_at: datetime | None = None
    created_at: datetime | None = None
    last_verified_backup: LastOut | None = Field(default=None, description="Its newest succeeded backup")
    last_drill: LastOut | None = Field(default=None, description="Its newest finished restore drill (GET only)")


class ConnectionOut(BaseModel):
    url: str = Field(description="The connection URL a link gives an application (contains the password)")


class EngineOut(BaseModel):
    name: str
    title: str
    versions: list[str]
    minor_versions: list[str] = Field(
        default_factory=list, description="Pinned minor versions a database may be upgraded to (same major line)"
    )
    default_version: str
    port: int
    variable: str


class LinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    database_id: str = Field(pattern=ID_PATTERN)
    variable: str | None = Field(
        default=None, pattern=ENV_NAME_PATTERN, examples=["DATABASE_URL"], description="Default: the engine's"
    )


class LinkOut(BaseModel):
    application_id: str
    database_id: str
    variable: str
    created_at: datetime | None = None


def database_out(row: dict[str, Any]) -> DatabaseOut:
    fields = {k: v for k, v in row.items() if k in DatabaseOut.model_fields}
    fields.update(uc.connection(row), user=row["username"])
    return DatabaseOut.model_validate(fields)


databases = Resource(router, DatabaseOut, database_out)


@router.get(
    "/databases/engines",
    operation_id="list_database_engines",
    summary="The engines and versions a database can be created with",
)
async def list_engines(principal: Principal = require_role("viewer")) -> list[EngineOut]:
    return [
        EngineOut(
            name=e.name,
            title=e.title,
            versions=list(e.versions),
            minor_versions=list(e.minors),
            default_version=e.default_version,
            port=e.port,
            variable=e.variable,
        )
        for e in dbengines.ENGINES.values()
    ]


@router.create(
    "/databases", summary="Create a database with generated credentials (state: starting, then running)",
    responses=CONFLICT,
)  # fmt: skip
async def create_database(
    body: DatabaseCreate, request: Request, principal: Principal = require_role("developer")
) -> DatabaseOut:
    public = uc.public_of(body.public.model_dump()) if body.public is not None else None
    limits = body.limits.model_dump(exclude_none=True)
    given = uc.DatabaseInput(body.name, body.engine, body.version, body.server_id, limits, body.config, public)
    return database_out(await uc.create(deps(request), principal, given))


databases.listing("/databases", "list_databases", uc.list_all, "The team's databases (never a password)")
databases.get("/databases/{database_id}", "get_database", uc.get, "A database: its state, host name and port")
for action, summary in (
    ("start", "Start the database (state: starting, then running)"),
    ("stop", "Stop the database; its data stays (state: stopping, then stopped)"),
    ("restart", "Restart the database (state: starting, then running)"),
):
    databases.action(
        "POST",
        f"/databases/{{database_id}}/{action}",
        f"{action}_database",
        getattr(uc, action),
        summary,
        role="developer",
        status_code=status.HTTP_202_ACCEPTED,
        responses=CONFLICT,
    )
databases.action(
    "POST",
    "/databases/{database_id}/rotate",
    "rotate_database_credentials",
    uc.rotate,
    "Rotate the database's password; linked applications are redeployed with the new URL once it is set",
    role="admin",
    status_code=status.HTTP_202_ACCEPTED,
    responses=CONFLICT,
)


@router.get(
    "/databases/{database_id}/connection",
    operation_id="reveal_database_connection",
    summary="Reveal the connection URL (with the password) to an admin; the read is audited",
)
async def reveal_connection(
    request: Request, database_id: DatabaseId, principal: Principal = require_role("admin")
) -> ConnectionOut:
    url = await uc.connection_url(deps(request), principal, database_id)
    await record_read(request, ["connection_url"])
    return ConnectionOut(url=url)


@router.delete(
    "/databases/{database_id}",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Delete a database; its volume (the data) is kept unless delete_volume=true",
    responses=CONFLICT,
)
async def delete_database(
    request: Request,
    database_id: DatabaseId,
    delete_volume: Annotated[bool, Query(description="Delete the data too (it cannot be undone)")] = False,
    principal: Principal = require_role("admin"),
) -> DatabaseOut:
    return database_out(await uc.delete(deps(request), principal, database_id, delete_volume))


# --- links ---------------------------------------------------------------------------------------------

ApplicationId = Annotated[str, Path(pattern=ID_PATTERN)]


@router.create(
    "/applications/{application_id}/links",
    summary="Link a database: its connection URL becomes a secret variable of the application's deployments",
    responses={409: problem_doc("The application links this database already, or another link sets the variable")},
)
async def link_database(
    body: LinkCreate, request: Request, application_id: ApplicationId, principal: Principal = require_role("developer")
) -> LinkOut:
    row = await links.link(deps(request), principal, application_id, body.database_id, body.variable)
    return LinkOut.model_validate(row)


@router.get(
    "/applications/{application_id}/links",
    operation_id="list_database_links",
    summary="The databases the application links",
)
async def list_links(
    request: Request, application_id: ApplicationId, principal: Principal = require_role("viewer")
) -> list[LinkOut]:
    return [LinkOut.model_validate(r) for r in await links.links_of(deps(request), principal, application_id)]


@router.delete(
    "/applications/{application_id}/links/{database_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Unlink a database (the variable goes at the application's next deployment)",
)
async def unlink_database(
    request: Request,
    application_id: ApplicationId,
    database_id: DatabaseId,
    principal: Principal = require_role("admin"),
) -> Response:
    await links.unlink(deps(request), principal, application_id, database_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
