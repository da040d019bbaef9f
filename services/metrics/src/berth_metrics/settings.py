"""Settings of the metrics service (``BERTH_`` variables on the shared base).

Every metrics-specific variable carries ``METRICS_`` after the prefix (``BERTH_METRICS_INTERVAL_S``) so the
all-in-one process can hold every service's settings in one environment.
"""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field

from berth_common.settings import BaseServiceSettings

# Filesystems that hold data on a disk; everything else in /proc/mounts (proc, cgroup, overlay layers of
# containers, tmpfs, ...) is not reported as a disk.
REAL_FILESYSTEMS = ("ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "jfs", "reiserfs", "vfat", "exfat", "ntfs3")


class MetricsSettings(BaseServiceSettings):
    service_name: str = "metrics"
    db_schema: str = "metrics"
    http_port: int = 8424

    # metrics_token (the base's): /metrics also answers a team's token derived from it, with that team's series

    # --- collection ---
    metrics_interval_s: float = Field(default=10.0, gt=0)  # one sample per container and server per interval
    # Docker API calls in flight. A one-shot stats call still waits for the engine's next 1 s stats tick,
    # so the bound sets how many containers one second reads: 32 reads 100 containers in about 4 s.
    metrics_stats_concurrency: int = Field(default=32, ge=1, le=256)
    metrics_stats_timeout_s: float = Field(default=5.0, gt=0)
    metrics_docker_url: str | None = None  # default: DOCKER_HOST or the local socket
    metrics_docker_api_version: str = "v1.41"
    metrics_server_name: str = Field(default_factory=socket.gethostname, min_length=1, max_length=128)
    metrics_ssh_timeout_s: float = Field(default=10.0, gt=0)  # connecting to an added server over SSH
    metrics_proc_root: Path = Path("/proc")  # /host/proc when the service runs in a container
    metrics_filesystems: tuple[str, ...] = REAL_FILESYSTEMS

    # --- server reachability ---
    metrics_server_down_after: int = Field(default=3, ge=1)  # collections the engine misses in a row: unreachable
    metrics_server_up_after: int = Field(default=1, ge=1)  # collections it answers in a row again: back

    # --- lifecycle ---
    metrics_restart_loop_count: int = Field(default=3, ge=1)  # this many restarts ...
    metrics_restart_loop_window_s: float = Field(default=300.0, gt=0)  # ... in this window is a loop
    metrics_kill_grace_s: float = Field(default=120.0, gt=0)  # a die this soon after a kill was asked for
    metrics_events_reconnect_max_s: float = Field(default=5.0, gt=0)

    # --- storage and retention ---
    metrics_raw_retention_h: float = Field(default=24.0, gt=0)
    metrics_minute_retention_d: float = Field(default=7.0, gt=0)
    metrics_hour_retention_d: float = Field(default=90.0, gt=0)
    metrics_retention_interval_s: float = Field(default=300.0, gt=0)  # how often rollups and deletes run
    metrics_rollup_lag_s: float = Field(default=15.0, ge=0)  # a minute is rolled up this long after it ended
    metrics_max_raw_rows_per_series: int = Field(default=20000, ge=10)
    metrics_max_series: int = Field(default=10000, ge=10)

    # --- alerts ---
    metrics_alert_margin_fraction: float = Field(default=0.1, gt=0, lt=1)  # default hysteresis margin
    metrics_rules_refresh_s: float = Field(default=30.0, gt=0)
    # the built-in "database down" alert: raised once a database's container has not been running and
    # healthy for this long (``domain.database_down``), for every database, without a rule
    metrics_database_down_after_s: float = Field(default=300.0, ge=0, le=86400)
    # how long an autoscaled service's readings must stay outside the band around its target
    metrics_autoscale_window_s: float = Field(default=60.0, gt=0, le=3600)
