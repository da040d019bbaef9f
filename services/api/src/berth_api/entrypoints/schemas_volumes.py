"""Bodies about an application's named volumes: the listing with sizes, and what a DELETE keeps."""

from __future__ import annotations

from pydantic import BaseModel, Field

from berth_api.entrypoints.schemas import Flag
from berth_api.entrypoints.schemas_apps_out import ApplicationOut


class VolumeRef(BaseModel):
    server_id: str = Field(description="The server it is on (`local`: the control plane's engine)")
    name: str = Field(description="Its name in the application's services")
    docker_name: str = Field(description="The Docker volume: berth-<application id>-<name>")


class ApplicationRemovalOut(ApplicationOut):
    volumes_kept: list[VolumeRef] = Field(
        description="The named volumes the removal leaves on the servers (all of them unless "
        "`delete_volumes=true`): delete them by a DELETE with `delete_volumes=true`, or on the server"
    )
    volumes_deleted: list[VolumeRef] = Field(description="The named volumes the removal deletes (asked explicitly)")


class VolumeOut(VolumeRef):
    size_bytes: int | None = Field(description="Its size as the engine counts it (null: the engine did not say)")
    path: str | None = Field(description="Where the desired state mounts it (null: no service mounts it any more)")
    size_mb: int | None = Field(description="The size hint of the desired state, in MB")


class VolumesOut(BaseModel):
    application_id: str
    available: Flag = Field(description="False when the scheduler could not be asked (see error): nothing is listed")
    error: str | None = None
    volumes: list[VolumeOut]
    unreachable: list[str] = Field(description="Servers that did not answer: their volumes are not listed")
