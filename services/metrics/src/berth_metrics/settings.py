"""Settings of the metrics service (``BERTH_`` variables on the shared base)."""

from __future__ import annotations

from berth_common.settings import BaseServiceSettings


class MetricsSettings(BaseServiceSettings):
    service_name: str = "metrics"
    db_schema: str = "metrics"
    http_port: int = 8424
