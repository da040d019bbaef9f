"""An application as the api answers it (sources, services, state), apart from the request models of
``schemas_apps``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from berth_api.entrypoints.schemas_apps import (
    BUFFER_REQUESTS,
    PULL_POLICY,
    BindIn,
    Limits,
    RestartPolicy,
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
    PullPolicy,
    RequestBuffering,
    Strategy,
)


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
