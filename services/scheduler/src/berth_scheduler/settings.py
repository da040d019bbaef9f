"""Settings of the scheduler service (``BERTH_`` variables on the shared base)."""

from __future__ import annotations

from berth_common.settings import BaseServiceSettings


class SchedulerSettings(BaseServiceSettings):
    service_name: str = "scheduler"
    db_schema: str = "scheduler"
    http_port: int = 8422
