"""Settings of the builder service (``BERTH_`` variables on the shared base)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from berth_builder.domain.dockerfile import parse_image_map
from berth_common.settings import BaseServiceSettings


class BuilderSettings(BaseServiceSettings):
    service_name: str = "builder"
    db_schema: str = "builder"
    http_port: int = 8421

    docker_host: str | None = None  # BERTH_DOCKER_HOST; default: DOCKER_HOST or the local socket
    docker_api_version: str = "v1.41"  # dockerd 20.10; pinned, not negotiated
    # buildkit: secret build args as secret mounts (never in history); legacy: no secret args accepted
    build_engine: Literal["buildkit", "legacy"] = "buildkit"
    max_concurrent_builds: int = Field(default=2, ge=1, le=32)
    # file:// URLs and absolute local paths as repositories (tests, single-machine setups); off by default
    allow_local_git: bool = False
    git_binary: str = "git"
    clone_timeout_s: float = Field(default=300.0, gt=0)
    build_timeout_s: float = Field(default=1800.0, gt=0)
    max_context_mb: int = Field(default=512, ge=1)
    # official image name -> local image (JSON object or name=image pairs); also read by berth_cli
    image_map: str = ""
    workspace_dir: Path | None = None  # default: <data_dir>/builds
    heartbeat_s: float = Field(default=10.0, gt=0)
    stale_after_s: float = Field(default=30.0, gt=0)  # a running build without heartbeat is taken over
    # how often a running build looks for a cancel request recorded by another builder process
    cancel_poll_s: float = Field(default=1.0, gt=0)
    ssh_timeout_s: float = Field(default=10.0, gt=0)  # connecting to a build server over SSH
    # reading one file of a repository for the api (rpc.builder.repository_file): size cap, deadline, reads
    file_max_bytes: int = Field(default=256 * 1024, ge=1, le=4 * 1024 * 1024)
    file_timeout_s: float = Field(default=60.0, gt=0, le=600)
    max_concurrent_reads: int = Field(default=4, ge=1, le=32)

    @field_validator("image_map")
    @classmethod
    def _valid_map(cls, value: str) -> str:
        parse_image_map(value)
        return value

    @property
    def workspaces(self) -> Path:
        return self.workspace_dir or (self.data_dir / "builds")
