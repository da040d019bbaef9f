"""Bodies of compose applications: the compose file (inline, or a path in the git repository), which
service and port get which host, and the translation shown on the application."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator

from berth_api.domain import names
from berth_api.entrypoints.schemas import given
from berth_common.catalogue import MAX_FILE_BYTES, MAX_FILES, MAX_FILES_BYTES, RequestBuffering, file_path
from berth_common.values import MAX_ROUTE_PATH, route_path

MAX_COMPOSE = 256 * 1024
RelPath = Annotated[str, Field(min_length=1, max_length=names.MAX_PATH), AfterValidator(names.relative_path)]
Host = Annotated[str, Field(min_length=1, max_length=names.MAX_HOST), AfterValidator(names.domain_host)]
RoutePath = Annotated[str, Field(min_length=1, max_length=MAX_ROUTE_PATH), AfterValidator(route_path)]


ProfileName = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$", examples=["debug"])
]
FilePath = Annotated[str, Field(min_length=1, max_length=1024), AfterValidator(file_path)]


class ComposeFileIn(BaseModel):
    """A file the compose file mounts as ``./files/<path>`` (a nginx config, an init SQL script ...)."""

    model_config = ConfigDict(extra="forbid")

    path: FilePath = Field(description="Relative, without '..': the compose file mounts it as ./files/<path>")
    content: SecretStr | None = Field(
        default=None,
        max_length=MAX_FILE_BYTES,
        description="The file's text (write-only, stored sealed; never shown). None: keep the stored file of this path",
    )
    mode: int | None = Field(default=None, ge=0, le=0o777, description="Permission bits (default 0o644)")


class ComposeFileOut(BaseModel):
    """A file of the application as it is shown: never its content."""

    path: str
    mode: int
    size: int = Field(description="Bytes (UTF-8)")
    sha256: str


class ComposeIn(BaseModel):
    """A compose file: ``inline`` (its YAML text) or ``path`` (relative to the git repository's root), and
    the files it mounts as ``./files/<path>``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"anyOf": [given(("inline",), absent=("path",)), given(("path",), absent=("inline",))]},
    )

    inline: str | None = Field(default=None, min_length=1, max_length=MAX_COMPOSE, exclude_if=lambda v: v is None)
    path: RelPath | None = Field(
        default=None,
        description="A compose file of the application's git repository (read by the builder: not yet)",
        exclude_if=lambda v: v is None,
    )
    profiles: list[ProfileName] = Field(
        default_factory=list,
        max_length=32,
        description="The compose profiles to activate, as `docker compose --profile` does: a service with "
        "`profiles` is deployed only when one of them is active (or the application's variable "
        "COMPOSE_PROFILES, comma-separated, names it); the others are named in the translation's notes",
        exclude_if=lambda v: not v,
    )
    files: list[ComposeFileIn] = Field(
        default_factory=list,
        max_length=MAX_FILES,
        description=f"Files the compose file mounts as ./files/<path> (at most {MAX_FILE_BYTES} bytes each, "
        f"{MAX_FILES_BYTES} together); contents may hold secrets: stored sealed, shown as path, size and sha256",
        exclude_if=lambda v: not v,
    )

    @model_validator(mode="after")
    def _one(self) -> ComposeIn:
        if (self.inline is None) == (self.path is None):
            raise ValueError("give inline or path, not both")
        if len(set(self.profiles)) != len(self.profiles):
            raise ValueError("profiles: each profile once")
        paths = [f.path for f in self.files]
        for i, p in enumerate(paths):
            if p in paths[:i]:
                raise ValueError(f"files/{i}/path: {p} is given twice")
            if any(q.startswith(p + "/") or p.startswith(q + "/") for q in paths[:i]):
                raise ValueError(f"files/{i}/path: {p} is a file and a directory of files at once")
        total = sum(len(f.content.get_secret_value().encode()) for f in self.files if f.content is not None)
        if total > MAX_FILES_BYTES:
            raise ValueError(f"files: the files are limited to {MAX_FILES_BYTES} bytes together")
        return self


class HostMapIn(BaseModel):
    """A host for a compose service's port; no ``host``: the generated host only (of another port of the
    service: that port's own generated host). ``path``: only the requests under this URL path prefix reach
    the port (on every host of that port of the service), unstripped."""

    model_config = ConfigDict(extra="forbid")

    service: str = Field(min_length=1, max_length=64, description="The service's name in the compose file")
    port: int = Field(
        ge=1,
        le=65535,
        description="The port the container listens on. A service's first entry names its routed port; a later "
        "one may name another port it declares (ports, expose), on a named host of its own or, without one, a "
        "generated host of that port (<service>-<port>-<app>-<env>): two hosts reach two ports of one service "
        "(MinIO's API and console)",
    )
    host: Host | None = Field(default=None, exclude_if=lambda v: v is None)
    path: RoutePath | None = Field(
        default=None,
        description="A URL path prefix (/api): only requests whose path starts with it reach this service, "
        "passed on unchanged (not stripped); a longer prefix wins over a shorter one and over the host's other "
        "services. Services of the application may share a host under different paths. One path per routed port "
        "of a service (each port may have its own); one host and path once in the application",
        exclude_if=lambda v: v is None,
    )
    buffer_requests: RequestBuffering | None = Field(
        default=None,
        description="The service's requests are read whole by the proxy before they are forwarded (at most "
        "max_body_mb MiB, else 413), on every host of the service: no request with a body is lost while its "
        "replicas change. One way per service: its entries that name it name the same size",
        exclude_if=lambda v: v is None,
    )


HostMaps = Annotated[list[HostMapIn], Field(max_length=100)]
ServerRef = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
PLACEMENT = (
    "The servers it runs on: names or ids of the team's servers, or `local` (the control plane's engine); "
    "empty: `local`. Each runs at least one replica; the replicas are spread over them in turn."
)


class PlacementIn(BaseModel):
    """The servers a compose service runs on (and publishes its ports on)."""

    model_config = ConfigDict(extra="forbid")

    service: str = Field(min_length=1, max_length=64, description="The service's name in the compose file")
    servers: list[ServerRef] = Field(min_length=1, max_length=32, description=PLACEMENT)


Placements = Annotated[list[PlacementIn], Field(max_length=100)]
PLACEMENTS = (
    "The servers each compose service runs on (stored as the servers' ids); a service not named runs on "
    "`local`. Its ports published on the server are published, and claimed, on each of its servers"
)
HOSTS = (
    "Which compose service and port get which host (and path); empty: the first service in the file with a "
    "published or exposed port gets the generated host at its first port. Each service named is a web service"
)


class ComposeOut(BaseModel):
    """The compose file as given, its hosts, and what Berth will run: the translation of the file."""

    inline: str | None = Field(default=None, exclude_if=lambda v: v is None)
    path: str | None = Field(default=None, exclude_if=lambda v: v is None)
    profiles: list[str] = Field(
        default_factory=list, description="The compose profiles activated", exclude_if=lambda v: not v
    )
    files: list[ComposeFileOut] = Field(
        default_factory=list,
        description="The files it mounts as ./files/<path>: never their content (left out while none)",
        exclude_if=lambda v: not v,
    )
    hosts: list[HostMapIn]
    placement: list[PlacementIn] = Field(default_factory=list, description=PLACEMENTS, exclude_if=lambda v: not v)
    translated: dict[str, Any] | None = Field(
        description="Each service as Berth runs it (image or build, command, entrypoint, environment, ports, "
        "volumes, health, depends_on, limits, replicas, restart), the start order, and notes: every key "
        "accepted but not carried"
    )


Body = TypeVar("Body", bound=BaseModel)


def services_or_compose(body: Body) -> Body:
    """An application is services (with a source) or a compose file (with hosts), never both."""
    services, compose = getattr(body, "services", None), getattr(body, "compose", None)
    if (services is None) == (compose is None):
        raise ValueError("give services or compose, not both")
    if services is not None and getattr(body, "source", None) is None:
        raise ValueError("source is required with services")
    if getattr(body, "hosts", None) and compose is None:
        raise ValueError("hosts are given with compose (a service's domains otherwise)")
    if getattr(body, "placement", None) and compose is None:
        raise ValueError("placement is given with compose (a service's servers otherwise)")
    return body
