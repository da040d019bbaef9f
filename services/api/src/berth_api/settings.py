"""Settings of the api service (``BERTH_`` variables on the shared base)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from berth_common.settings import BaseServiceSettings


class ApiSettings(BaseServiceSettings):
    service_name: str = "api"
    db_schema: str = "api"
    http_port: int = 8420

    # First start: the bootstrap admin and its token (written to ``admin_token_path``, mode 0600).
    admin_email: str = Field(default="admin@localhost", min_length=3, max_length=254)
    admin_token_file: Path | None = None  # BERTH_ADMIN_TOKEN_FILE; default <data_dir>/admin.token

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)  # BERTH_MAX_BODY_BYTES
    status_timeout_s: float = Field(default=2.0, gt=0)  # per-service health query in GET /v1/status
    # In-flight requests may finish within this on stop (the runtime waits at most 30 s for the http task).
    shutdown_grace_s: int = Field(default=25, ge=1, le=29)
    token_touch_interval_s: float = Field(default=60.0, ge=0)  # last_used_at is written at most this often

    @property
    def admin_token_path(self) -> Path:
        return self.admin_token_file or self.data_dir / "admin.token"
