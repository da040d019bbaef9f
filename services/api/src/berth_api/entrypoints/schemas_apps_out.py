"""An application as the api answers it (sources, services, state), apart from the request models of
``schemas_apps``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from berth_api.domain import names
from berth_api.entrypoints.schemas_apps import (
    BUFFER_REQUESTS,
    PULL_POLICY,
    BindIn,
    Limits,
    VariableOut,
    VolumeIn,
)
from berth_api.entrypoints.schemas_compose import (
    ComposeOut,
)
from berth_api.entrypoints.schemas_pre_deploy import PRE_DEPLOY, PreDeployIn
from berth_api.entrypoints.schemas_runtime import LastDeployment, LiveVersion, RuntimeStatus
from berth_api.entrypoints.schemas_tls import TlsOut
from berth_common.catalogue import (
    HEALTH_PATH_PATTERN,
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
ServerRef = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
PLACEMENT = (
    "The servers it runs on: names or ids of the team's servers, or `local` (the control plane's engine); "
    "empty: `local`. Each runs at least one replica; the replicas are spread over them in turn."
)
ServerRefs = Annotated[
    list[ServerRef],
    Field(default_factory=list, max_length=32, description=PLACEMENT, exclude_if=lambda v: not v),
]


class ImageSourceOut(BaseModel):
    kind: Literal["image"]
    image: str
    pull_policy: PullPolicy | None = Field(default=None, description=PULL_POLICY, exclude_if=lambda v: v is None)


class GitSourceOut(BaseModel):
    kind: Literal["git"]
    repository: str
    branch: str | None
    commit: str | None
    subdirectory: str
    dockerfile: str | None
    build_args: list[VariableOut]
    build_server: str | None = Field(default=None, exclude_if=lambda v: v is None, description="A server id")


class WebServiceOut(BaseModel):
    kind: Literal["web"]
    name: str
    port: int
    replicas: int
    health_path: str
    command: list[str] | None
    domains: list[str]
    hosts: list[str] = Field(description="Every host routed to it: the generated one first, then the domains")
    limits: Limits | None
    servers: list[str] = Field(
        default_factory=list, description="The ids of the servers it runs on (empty: local)", exclude_if=lambda v: not v
    )
    volumes: list[VolumeIn] = Field(default_factory=list, exclude_if=lambda v: not v)
    binds: list[BindIn] = Field(default_factory=list, exclude_if=lambda v: not v)
    strategy: Strategy = Field(default="rolling", exclude_if=lambda v: v == "rolling")
    buffer_requests: RequestBuffering | None = Field(
        default=None, description=BUFFER_REQUESTS, exclude_if=lambda v: v is None
    )
    path_prefix: str | None = Field(
        default=None,
        description="A compose application's service: only requests under this URL path prefix reach it, on "
        "every one of its hosts (its hosts entry's path)",
        exclude_if=lambda v: v is None,
    )


class WorkerServiceOut(BaseModel):
    kind: Literal["worker"]
    name: str
    replicas: int
    command: list[str] | None
    health_command: list[str] | None
    limits: Limits | None
    servers: list[str] = Field(
        default_factory=list, description="The ids of the servers it runs on (empty: local)", exclude_if=lambda v: not v
    )
    volumes: list[VolumeIn] = Field(default_factory=list, exclude_if=lambda v: not v)
    binds: list[BindIn] = Field(default_factory=list, exclude_if=lambda v: not v)
    strategy: Strategy = Field(default="rolling", exclude_if=lambda v: v == "rolling")


ApplicationState = Literal["active", "removing"]
RemovalPhase = Literal["cancelling", "routes", "restoring", "draining", "stopping", "images"]


class ApplicationOut(BaseModel):
    id: str
    name: str
    project_id: str
    environment_id: str
    environment: str
    source: Annotated[ImageSourceOut | GitSourceOut, Field(discriminator="kind")]
    services: list[Annotated[WebServiceOut | WorkerServiceOut, Field(discriminator="kind")]]
    env: list[VariableOut]
    limits: Limits
    restart_policy: RestartPolicy
    stop_timeout_s: int
    created_at: datetime
    updated_at: datetime
    state: ApplicationState = Field(
        description="`removing` from a DELETE of a deployed application until the scheduler took it down "
        "(it is then gone) or could not (then `active` again, with `removal_error`); while removing it is "
        "neither changed nor deployed"
    )
    removal_error: str | None = Field(description="Why the last removal failed, until the next DELETE")
    tls: TlsOut = Field(default_factory=TlsOut, description="HTTPS for its hosts (certificates: GET .../certificates)")
    compose: ComposeOut | None = Field(
        default=None, description="A compose application's file and translation", exclude_if=lambda v: v is None
    )
    pre_deploy: PreDeployIn | None = Field(default=None, description=PRE_DEPLOY, exclude_if=lambda v: v is None)
    removal_phase: RemovalPhase | None = Field(
        default=None,
        description="While `removing`: `cancelling` (unfinished deployments end first), `routes` (Traefik "
        "removes its hosts), `draining` (in-flight requests finish), `stopping` (its containers stop), `images` "
        "(its built images go), or `restoring` (a route removal was refused: the routes are put back, then it "
        "is `active` with `removal_error`); null otherwise",
    )


class ApplicationListItem(ApplicationOut):
    last_deployment: LastDeployment | None = Field(
        default=None, description="Its newest deployment (any state); null when it was never deployed"
    )


class ApplicationDetail(ApplicationOut):
    live: LiveVersion | None = Field(description="The last deployment that succeeded")
    runtime: RuntimeStatus
