"""Settings of the notifier service (``BERTH_`` variables on the shared base)."""

from __future__ import annotations

from berth_common.settings import BaseServiceSettings


class NotifierSettings(BaseServiceSettings):
    service_name: str = "notifier"
    db_schema: str = "notifier"
    http_port: int = 8425
