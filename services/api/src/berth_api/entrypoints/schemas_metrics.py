"""Bodies of metrics, alert rules and alerts (the public contract, documented in the OpenAPI).

Series, rules and alerts are the metrics service's views as they are; rule bodies are its rule spec.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from berth_api.entrypoints.schemas import Flag
from berth_common.catalogue import AlertRuleSpec, AlertRuleView, AlertView, SeriesData, ServerStatus

__all__ = [
    "AlertRuleIn",
    "AlertRuleOut",
    "AlertRuleSpec",
    "AlertRuleView",
    "AlertView",
    "MetricsOut",
    "SeriesData",
    "ServerStatus",
]
RuleTargetKind = Literal["container", "app", "server", "database"]

METRIC_PATTERN = r"^[a-z0-9_]{1,32}$"
SERVER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


class AlertRuleIn(AlertRuleSpec):
    """The metrics service's rule, whose target may also be one of the team's databases (``database``)."""

    target_kind: RuleTargetKind  # type: ignore[assignment]
    enabled: Flag = True


class AlertRuleOut(AlertRuleView):
    target_kind: RuleTargetKind  # type: ignore[assignment]


class MetricsOut(BaseModel):
    target_kind: Literal["app", "server", "database"]
    target_id: str = Field(description="The application id, the database id, or the server's name")
    resolution: Literal["raw", "1m", "1h"] = Field(description="Raw samples, 1-minute or 1-hour rollups")
    step_s: float = Field(description="Seconds per point (at least the resolution's)")
    start: datetime | None
    end: datetime | None
    series: list[SeriesData] = Field(
        description="One per metric of each container (or of the server and each of its mounts)"
    )
    server_status: ServerStatus | None = Field(
        default=None, description="A server's: whether its Docker engine answers the metrics collections"
    )
