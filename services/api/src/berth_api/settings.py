"""Settings of the api service (``BERTH_`` variables on the shared base)."""

from __future__ import annotations

from berth_common.settings import BaseServiceSettings


class ApiSettings(BaseServiceSettings):
    service_name: str = "api"
    db_schema: str = "api"
    http_port: int = 8420
