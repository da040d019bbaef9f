"""The events a database command ends with, as data: its state (``DatabaseChanged``) and an upgrade's
outcome's identifiers and failure (reasons cut to the catalogue's 2,000 characters)."""

from __future__ import annotations

from berth_common.catalogue import DatabaseChanged, DatabaseUpgradeFailed, UpgradeDatabase


def changed(
    database_id: str,
    team_id: str,
    request_id: str,
    state: str,
    reason: str = "",
    host: str | None = None,
    port: int | None = None,
) -> DatabaseChanged:
    return DatabaseChanged.model_validate(
        {
            "database_id": database_id,
            "team_id": team_id,
            "request_id": request_id,
            "state": state,
            "reason": reason[:2000],
            "host": host,
            "port": port,
        }
    )


def upgrade_ids(msg: UpgradeDatabase) -> dict[str, str]:
    spec = msg.spec
    return {
        "database_id": spec.database_id,
        "team_id": spec.team_id,
        "request_id": msg.request_id,
        "from_version": msg.from_version,
        "to_version": spec.version,
    }


def upgrade_failed(
    msg: UpgradeDatabase, reason: str, *, running: str | None = None, rolled_back: bool = False
) -> DatabaseUpgradeFailed:
    values = {"reason": reason[:2000], "running_version": running, "rolled_back": rolled_back}
    return DatabaseUpgradeFailed.model_validate({**upgrade_ids(msg), **values})
