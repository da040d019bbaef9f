"""Settings of the proxy-sync service (``BERTH_`` variables on the shared base)."""

from __future__ import annotations

from berth_common.settings import BaseServiceSettings


class ProxySyncSettings(BaseServiceSettings):
    service_name: str = "proxy-sync"
    db_schema: str = "proxy"
    http_port: int = 8423
