"""Bodies of deployments (the public contract, documented in the OpenAPI)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from berth_api.domain import names
from berth_api.domain.deployments import Status
from berth_api.entrypoints.schemas import ID_PATTERN
from berth_common.catalogue import DeploymentState, RolloutOptions

COMMIT_PATTERN = r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$"  # SHA-1 or SHA-256 repositories


def _one_line(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("control characters (newline, tab, ...) are not allowed")
    return value


class DeployRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    options: RolloutOptions = Field(default_factory=RolloutOptions, description="Overrides of the scheduler's defaults")
    commit: str | None = Field(
        default=None,
        pattern=COMMIT_PATTERN,
        description="Build this commit of the application's git repository (a full commit id, recorded on the "
        "deployment at once) instead of the head of its branch or tag when the build starts; git applications only",
    )


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deployment_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="A succeeded deployment of this application; default: the one before the live one",
    )
    options: RolloutOptions = Field(default_factory=RolloutOptions)


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[
        str,
        Field(min_length=1, max_length=500, json_schema_extra={"pattern": names.PRINTABLE_PATTERN}),
        AfterValidator(_one_line),
    ] = "cancelled by user"


class SourceSummary(BaseModel):
    kind: Literal["image", "git"]
    image: str | None = None
    repository: str | None = None
    ref: str | None = None


class DeploymentOut(BaseModel):
    id: str
    application_id: str
    number: int = Field(description="1, 2, ... per application")
    kind: Literal["deploy", "rollback"]
    rollback_of: str | None = Field(description="The deployment whose image a rollback runs")
    status: Status = Field(description="queued, in_progress, succeeded, failed or cancelled")
    state: DeploymentState = Field(description="The scheduler's state: queued, building, starting, ...")
    step: str = Field(description="What happened last")
    detail: str
    reason: str | None = Field(description="Why it failed or was cancelled")
    ended_in: DeploymentState | None = Field(
        default=None, description="Failed or cancelled: the state it was in then (where it stopped)"
    )
    image: str | None = Field(description="The image run (for a git source: known once built)")
    image_digest: str | None = Field(
        default=None, description="repo@sha256:... of a pulled image, once pulled: what a rollback to it runs"
    )
    images_pruned_at: datetime | None = Field(
        default=None, description="When image retention removed the image it ran: a rollback to it is refused"
    )
    commit: str | None
    generated_dockerfile: str | None = Field(description="The Dockerfile Berth generated, when it detected the build")
    source: SourceSummary
    spec: dict[str, Any] = Field(description="The snapshot sent to the scheduler; secret values are null")
    options: dict[str, Any]
    previous_deployment_id: str | None
    duration_s: float | None
    created_by: str | None
    created_at: datetime = Field(description="When it was queued")
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancel_requested_at: datetime | None
