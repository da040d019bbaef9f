"""What the api answers about an application's running state: its live deployment and its replicas, as
the scheduler reports them (``RuntimeStatus.available`` is False when the scheduler could not be asked)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from berth_api.domain.deployments import Status
from berth_api.entrypoints.schemas import Flag


class LiveVersion(BaseModel):
    deployment_id: str
    number: int
    image: str | None
    finished_at: datetime | None


class LastDeployment(BaseModel):
    """An application's newest deployment, whatever its state (in the application list)."""

    id: str
    number: int
    kind: Literal["deploy", "rollback"]
    status: Status
    state: str
    created_at: datetime
    finished_at: datetime | None


class ReplicaOut(BaseModel):
    deployment_id: str
    service: str
    replica: int
    container: str
    state: str
    health: str
    restarts: int
    upstream: str | None
    server: str = Field(
        default="local", description="The id of the server the replica runs on (`local`: the server Berth runs on)"
    )
    server_name: str = Field(default="local", description="That server's name")


class RuntimeStatus(BaseModel):
    available: Flag = Field(description="False when the scheduler could not be asked (see error)")
    error: str | None = None
    live_deployment_id: str | None = None
    replicas: list[ReplicaOut] = Field(default_factory=list)
