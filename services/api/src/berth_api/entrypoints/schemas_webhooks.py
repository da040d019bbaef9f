"""Bodies of git forge webhooks: an application's webhook (its secret only in the answer that makes it),
and the answer to a forge's delivery."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

from berth_api.domain import names
from berth_api.domain.forges import FORGES, Forge
from berth_api.domain.webhook_rules import MAX_PATTERN, MAX_WATCH_PATHS, watch_path_problem
from berth_api.entrypoints.schemas import Flag

WATCH_PATHS = (
    "Deploy only when a pushed commit changed a file matching one of these (relative to the repository's root): "
    "a path without a wildcard names a file or a directory, '*' and '?' match within one segment, '**' across "
    "segments; a leading '!' excludes. Empty: every push to the tracked branch deploys. A push whose forge "
    "does not list the changed files (Bitbucket) deploys"
)
TAGS = "A tag push deploys the tagged commit (default: only pushes to the tracked branch deploy)"


def _watch_path(value: str) -> str:
    problem = watch_path_problem(value)
    if problem:
        raise ValueError(problem)
    return value


WatchPath = Annotated[
    str,
    Field(min_length=1, max_length=MAX_PATTERN, json_schema_extra={"pattern": names.PRINTABLE_PATTERN}),
    AfterValidator(_watch_path),
]
WatchPaths = Annotated[list[WatchPath], Field(max_length=MAX_WATCH_PATHS, description=WATCH_PATHS)]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    watch_paths: WatchPaths = Field(default_factory=list)
    tags: Flag = Field(default=False, description=TAGS)


class WebhookPatch(BaseModel):
    """What changes (a field left out keeps its value)."""

    model_config = ConfigDict(extra="forbid")

    watch_paths: WatchPaths | None = None
    tags: Flag | None = Field(default=None, description=TAGS)


class WaitingPushOut(BaseModel):
    commit: str
    ref: str
    forge: str
    pushes: int = Field(description="Pushes received in this burst (the newest replaced the others)")
    received_at: datetime
    due_at: datetime = Field(description="When it deploys, unless a newer push replaces it first")


API_URL = (
    "The forge's REST API: https://api.github.com (GitHub Enterprise: https://<host>/api/v3), "
    "https://gitlab.com/api/v4, https://<host>/api/v1 (Gitea, Forgejo, Gogs), https://api.bitbucket.org/2.0, "
    "or the Bitbucket Server's address"
)
REPOSITORY = "owner/name (GitLab: the project's id or full path; Bitbucket: workspace/slug)"


def _repository(value: str) -> str:
    if any(part in (".", "..") for part in value.split("/")):
        raise ValueError("a repository has no '.' or '..' segment")
    return value


def _token(value: SecretStr) -> SecretStr:
    if not all(33 <= ord(c) <= 126 for c in value.get_secret_value()):
        raise ValueError("a token is printable ASCII without spaces")
    return value


class StatusTargetIn(BaseModel):
    """Where the deployments a push starts are reported as commit statuses (pending, success, failure)."""

    model_config = ConfigDict(extra="forbid")

    forge: Forge
    api_url: str = Field(
        min_length=8,
        max_length=500,
        pattern=r"^https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~/%-]*)?$",
        description=API_URL,
    )
    repository: Annotated[
        str,
        Field(min_length=1, max_length=300, pattern=r"^([0-9]+|[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+)$"),
        AfterValidator(_repository),
    ] = Field(description=REPOSITORY)
    token: Annotated[SecretStr, Field(min_length=1, max_length=1000), AfterValidator(_token)] = Field(
        description="Write-only: sealed, never returned"
    )


class StatusTargetOut(BaseModel):
    forge: Forge
    api_url: str
    repository: str


class WebhookOut(BaseModel):
    id: str
    application_id: str
    url: str = Field(description="Where the forge sends its deliveries (the same URL for every forge)")
    forges: list[Forge] = Field(default_factory=lambda: list(FORGES))
    watch_paths: list[str]
    tags: Flag
    created_at: datetime
    rotated_at: datetime | None
    last_delivery_at: datetime | None
    last_result: str | None = Field(description="What the last verified delivery did")
    waiting: WaitingPushOut | None = Field(default=None, description="The push waiting to deploy (debounce)")
    status: StatusTargetOut | None = Field(default=None, description="Where commit statuses go (never the token)")


class WebhookCreated(WebhookOut):
    secret: str = Field(
        description="The webhook's secret, shown only now: the forge's 'Secret' (GitHub, Gitea, Forgejo, "
        "Gogs, Bitbucket) or 'Secret token' (GitLab). Lost: rotate it"
    )


class DeliveryOut(BaseModel):
    result: Literal["pong", "queued", "skipped"]
    detail: str
    forge: str
    delivery_id: str
    commit: str | None = None
    deploy_at: datetime | None = None
