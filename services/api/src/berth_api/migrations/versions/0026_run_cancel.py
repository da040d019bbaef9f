"""api: a run may end ``cancelled`` (``POST .../runs/{run_id}/cancel``)."""

from collections.abc import Callable
from typing import Any

from berth_api.adapters import runs as t
from berth_common.db.revision import Step, steps


def _status(condition: str) -> Callable[[Any], None]:
    """Replace the runs' status check by ``condition``."""

    def change(op: Any) -> None:
        op.drop_constraint("runs_status", t.runs.name, type_="check")
        op.create_check_constraint("runs_status", t.runs.name, condition)

    return change


revision = "api_0026"
down_revision = "api_0025"
upgrade, downgrade = steps(Step(_status(t.STATUS_CHECK), _status(t.STATUS_CHECK_0024)))
