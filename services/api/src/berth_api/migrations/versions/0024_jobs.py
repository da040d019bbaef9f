"""api: cron jobs of an application, and their firings among the runs (``kind``, ``job_id``, ``skipped``)."""

from collections.abc import Callable
from typing import Any

from berth_api.adapters import jobs as j
from berth_api.adapters import runs as t
from berth_common.db.revision import Step, columns, steps, table


def _status(condition: str) -> Callable[[Any], None]:
    """Replace the runs' status check by ``condition`` (a run may be ``skipped`` from this revision on)."""

    def change(op: Any) -> None:
        op.drop_constraint("runs_status", t.runs.name, type_="check")
        op.create_check_constraint("runs_status", t.runs.name, condition)

    return change


revision = "api_0024"
down_revision = "api_0023"
upgrade, downgrade = steps(
    table(
        j.jobs,
        "id team_id application_id name cron timezone command service timeout_s concurrency enabled revision "
        "created_by created_at updated_at",
    ),
    columns(t.runs, "kind job_id", omit=["runs_status"]),
    Step(_status(t.STATUS_CHECK_0024), _status(t.STATUS_CHECK_0022)),
)
