"""Bodies of projects, environments and applications (the public contract, documented in the OpenAPI).

Every name, host, image, URL, ref and path is checked by its grammar (``berth_api.domain.names``) so a bad
value is a 422 naming the field. Secret values are write-only: a response carries ``value: null`` for
them, and a request that sends a secret back without a value keeps the stored one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from berth_api.domain import names
from berth_api.entrypoints.schemas import Flag, given
from berth_api.entrypoints.schemas_compose import (
    HOSTS,
    PLACEMENT,
    PLACEMENTS,
    ComposeIn,
    HostMaps,
    Placements,
    ServerRef,
    services_or_compose,
)
from berth_api.entrypoints.schemas_git import GitAccessIn
from berth_api.entrypoints.schemas_pre_deploy import PRE_DEPLOY, PreDeployIn
from berth_api.entrypoints.schemas_tls import TlsIn
from berth_common.catalogue import (
    HEALTH_PATH_PATTERN,
    MAX_VOLUME_MB,
    MountPath,
    PullPolicy,
    RequestBuffering,
    Strategy,
)
from berth_common.values import DNS_LABEL_PATTERN, ENV_NAME_PATTERN, SLUG_PATTERN

ResourceName = Annotated[
    str,
    Field(min_length=1, max_length=63, json_schema_extra={"pattern": DNS_LABEL_PATTERN}),
    AfterValidator(names.resource_name),
]
Slug = Annotated[
    str,
    Field(
        min_length=1,
        max_length=32,
        json_schema_extra={"pattern": SLUG_PATTERN},
        description="1-32 lowercase letters, digits or '-' (part of container names)",
    ),
    AfterValidator(names.slug),
]
EnvName = Annotated[
    str,
    Field(min_length=1, max_length=128, json_schema_extra={"pattern": ENV_NAME_PATTERN}),
    AfterValidator(names.env_name),
]
EnvValue = Annotated[str, Field(max_length=names.MAX_VALUE), AfterValidator(names.env_value)]
Host = Annotated[str, Field(min_length=1, max_length=names.MAX_HOST), AfterValidator(names.domain_host)]
ImageRef = Annotated[
    str, Field(min_length=1, max_length=names.MAX_IMAGE, examples=["nginx:1.27"]), AfterValidator(names.image_ref)
]
GitUrl = Annotated[
    str,
    Field(min_length=1, max_length=names.MAX_URL, examples=["https://github.com/acme/shop.git"]),
    AfterValidator(lambda v: names.git_url(v, allow_local=True)),  # local ones: checked against the settings
]
Branch = Annotated[str, Field(min_length=1, max_length=names.MAX_REF), AfterValidator(names.branch)]
Commit = Annotated[str, Field(min_length=7, max_length=64), AfterValidator(names.commit)]
RelPath = Annotated[str, Field(max_length=names.MAX_PATH), AfterValidator(names.relative_path)]
DockerfilePath = Annotated[str, Field(min_length=1, max_length=names.MAX_PATH), AfterValidator(names.dockerfile_path)]
ArgvItem = Annotated[str, Field(max_length=names.MAX_ARG), AfterValidator(names.argv_item)]
Command = Annotated[list[ArgvItem], Field(min_length=1, max_length=256)]
HealthPath = Annotated[str, Field(min_length=1, max_length=1024, pattern=HEALTH_PATH_PATTERN)]
RestartPolicy = Literal["no", "always", "unless-stopped", "on-failure"]
ServerRefs = Annotated[
    list[ServerRef],
    Field(default_factory=list, max_length=32, description=PLACEMENT, exclude_if=lambda v: not v),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- volumes -------------------------------------------------------------------------------------------

STRATEGY = (
    "rolling (default): the new replicas start and are routed before the old ones stop, no downtime; two "
    "versions run at once. recreate: the old replicas leave the routes and stop before the new ones start (a "
    "short gap, reported as expected downtime); required by a single-writer volume"
)
PATH_RULE = "An absolute path without '..' or ':'"


class VolumeIn(Strict):
    """A named volume: kept across deployments, rollbacks and scaling, deleted only when asked explicitly."""

    name: Slug = Field(description="The volume's name in the application (Docker volume berth-<app id>-<name>)")
    path: MountPath = Field(description=f"Where it is mounted in the container. {PATH_RULE}")
    size_mb: int | None = Field(
        default=None, ge=1, le=MAX_VOLUME_MB, description="A size hint in MB", exclude_if=lambda v: v is None
    )
    single_writer: Flag = Field(
        default=False,
        description="Only one container may run with it (a database's files): 1 replica and strategy recreate",
        exclude_if=lambda v: not v,
    )
    read_only: Flag = Field(default=False, description="Mounted read-only", exclude_if=lambda v: not v)


class BindIn(Strict):
    """A directory of the server mounted into the container; only under a path the administrator allows
    (``BERTH_BIND_MOUNT_ALLOW``)."""

    host_path: MountPath = Field(description=f"The directory on the server. {PATH_RULE}")
    path: MountPath = Field(description=f"Where it is mounted in the container. {PATH_RULE}")
    read_only: Flag = True


# one volume may be mounted at two paths (a data and a config directory, as compose files do); one path
# holds one mount (``domain/mounts.refusal``: a 422 naming the repeated path)
VolumesIn = Annotated[list[VolumeIn], Field(default_factory=list, max_length=16, exclude_if=lambda v: not v)]
BindsIn = Annotated[list[BindIn], Field(default_factory=list, max_length=16, exclude_if=lambda v: not v)]
StrategyIn = Annotated[Strategy, Field(description=STRATEGY, exclude_if=lambda v: v == "rolling")]


# --- applications --------------------------------------------------------------------------------------


def _unique(items: list[Any], what: str) -> list[Any]:
    seen = [getattr(i, "name", None) for i in items]
    dupes = sorted({n for n in seen if n is not None and seen.count(n) > 1})
    if dupes:
        raise ValueError(f"{what} names must be unique; repeated: {', '.join(dupes)}")
    return items


class VariableIn(Strict):
    name: EnvName
    value: EnvValue | None = Field(
        default=None, description="Omit (or null) to keep the stored value: how a secret is sent back unchanged."
    )
    secret: Flag = Field(default=False, description="Write-only: never returned after it is set, encrypted at rest.")


class VariableOut(BaseModel):
    name: str
    value: str | None = Field(description="null for secrets: their value is never returned")
    secret: Flag


Variables = Annotated[list[VariableIn], Field(max_length=500), AfterValidator(lambda v: _unique(v, "variable"))]
BuildArgs = Annotated[list[VariableIn], Field(max_length=200), AfterValidator(lambda v: _unique(v, "build arg"))]


class Limits(Strict):
    cpus: float | None = Field(default=None, gt=0, le=512, description="CPU cores")
    memory_mb: int | None = Field(default=None, ge=6, le=4_194_304, description="Memory in MB")


PULL_POLICY = (
    "always: ask the registry at every deployment; if-missing: use the image on the server when it is there "
    "(no registry contacted). Default: if-missing for a digest (name@sha256:...), always for a tag"
)


class ImageSourceIn(Strict):
    kind: Literal["image"]
    image: ImageRef
    pull_policy: PullPolicy | None = Field(default=None, description=PULL_POLICY)


class GitSourceIn(Strict):
    kind: Literal["git"]
    repository: GitUrl
    branch: Branch | None = Field(default=None, description="A branch or tag; neither this nor commit: HEAD")
    commit: Commit | None = Field(default=None, description="A commit to build (7-64 hex digits)")
    subdirectory: RelPath = ""
    dockerfile: DockerfilePath | None = Field(
        default="Dockerfile", description="Path inside the subdirectory; null: Berth detects how to build"
    )
    build_args: BuildArgs = Field(default_factory=list)
    build_server: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="The server whose Docker engine builds the image (a server id or name); null: local",
        exclude_if=lambda v: v is None,
    )

    @model_validator(mode="after")
    def _one_ref(self) -> GitSourceIn:
        if self.branch is not None and self.commit is not None:
            raise ValueError("give a branch or a commit, not both")
        return self


Source = Annotated[ImageSourceIn | GitSourceIn, Field(discriminator="kind")]


BUFFER_REQUESTS = (
    "Traefik reads each request's whole body (at most `max_body_mb` MiB, default 10; a larger one is answered "
    "413) before forwarding it: for an application that answers before reading the body (a CGI script), whose "
    "answers could otherwise arrive cut. Not for streamed answers (server-sent events, long polls, progressive "
    "downloads): the answer is held until complete too. Null: requests are streamed to the application"
)


class WebServiceIn(Strict):
    kind: Literal["web"]
    name: Slug
    port: int = Field(ge=1, le=65535, description="The port the container listens on")
    replicas: int = Field(default=1, ge=1, le=64)
    health_path: HealthPath = Field(default="/", description="Readiness: a GET here answers 2xx")
    command: Command | None = Field(default=None, description="argv; null: the image's command")
    domains: list[Host] = Field(default_factory=list, max_length=99, description="Custom host names")
    limits: Limits | None = None
    servers: ServerRefs
    volumes: VolumesIn
    binds: BindsIn
    strategy: StrategyIn = "rolling"
    buffer_requests: RequestBuffering | None = Field(
        default=None, description=BUFFER_REQUESTS, exclude_if=lambda v: v is None
    )

    @model_validator(mode="after")
    def _unique_domains(self) -> WebServiceIn:
        if len(set(self.domains)) != len(self.domains):
            raise ValueError("domains must be unique")
        return self


class WorkerServiceIn(Strict):
    kind: Literal["worker"]
    name: Slug
    replicas: int = Field(default=1, ge=1, le=64)
    command: Command | None = None
    health_command: Command | None = Field(default=None, description="argv run in the container; exit 0 = ready")
    limits: Limits | None = None
    servers: ServerRefs
    volumes: VolumesIn
    binds: BindsIn
    strategy: StrategyIn = "rolling"


Service = Annotated[WebServiceIn | WorkerServiceIn, Field(discriminator="kind")]
Services = Annotated[list[Service], Field(min_length=1, max_length=20), AfterValidator(lambda v: _unique(v, "service"))]


# an application of services: a source, services, no compose file, no hosts (a service's domains instead), no
# placement (a service's servers instead)
_OF_SERVICES = given(("services", "source"), absent=("compose",))
_OF_SERVICES["properties"]["hosts"] = {"maxItems": 0}
_OF_SERVICES["properties"]["placement"] = {"maxItems": 0}


class ApplicationCreate(Strict):
    """Services (with a source, without hosts) or a compose file: the two request variants of the OpenAPI."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                _OF_SERVICES,
                given(("compose",), absent=("services",)),
            ]
        }
    )

    name: Slug
    source: Source | None = Field(default=None, description="Required with services; with compose: a build needs git")
    services: Services | None = Field(default=None, description="The services; or give compose instead")
    compose: ComposeIn | None = Field(default=None, description="A compose file instead of services")
    hosts: HostMaps = Field(default_factory=list, description=HOSTS)
    placement: Placements = Field(default_factory=list, description=PLACEMENTS)
    env: Variables = Field(default_factory=list, description="Runtime environment variables")
    limits: Limits = Field(default_factory=Limits)
    restart_policy: RestartPolicy = "unless-stopped"
    stop_timeout_s: int = Field(default=10, ge=0, le=3600, description="SIGTERM, then SIGKILL after this")
    tls: TlsIn | None = Field(default=None, description="HTTPS for its hosts; omitted: the platform's defaults")
    pre_deploy: PreDeployIn | None = Field(default=None, description=PRE_DEPLOY)
    git_access: GitAccessIn | None = Field(
        default=None,
        description="The private repository's credential, given now (write-only): a compose file at a path "
        "of the repository is read with it in this request",
    )

    @model_validator(mode="after")
    def _services_or_compose(self) -> ApplicationCreate:
        return services_or_compose(self)


class ApplicationUpdate(Strict):
    """Each field given replaces that field as a whole; the name is fixed (it is in hosts and containers)."""

    # services or a compose file, never both (a compose application's services come from its file)
    model_config = ConfigDict(
        json_schema_extra={"anyOf": [given((), absent=("services",)), given((), absent=("compose",))]}
    )

    source: Source | None = None
    services: Services | None = None
    compose: ComposeIn | None = None
    hosts: HostMaps | None = None
    placement: Placements | None = Field(default=None, description=PLACEMENTS)
    env: Variables | None = None
    limits: Limits | None = None
    restart_policy: RestartPolicy | None = None
    stop_timeout_s: int | None = Field(default=None, ge=0, le=3600)
    tls: TlsIn | None = None
    pre_deploy: PreDeployIn | None = Field(default=None, description=PRE_DEPLOY)
