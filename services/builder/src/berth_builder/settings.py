"""Settings of the builder service (``BERTH_`` variables on the shared base)."""

from __future__ import annotations

from berth_common.settings import BaseServiceSettings


class BuilderSettings(BaseServiceSettings):
    service_name: str = "builder"
    db_schema: str = "builder"
    http_port: int = 8421
