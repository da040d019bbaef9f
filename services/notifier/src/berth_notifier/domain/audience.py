"""Who an event concerns (pure): its application, team and project, or the teams a server event names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

MAX_TEAMS = 100


@dataclass(frozen=True)
class Audience:
    application_id: str | None = None
    team_id: str | None = None
    project_id: str | None = None
    team_ids: tuple[str, ...] = ()  # a server event: every team with containers on that server


def audience(event: BaseModel) -> Audience:
    """Read from the fields the event's catalogue model declares (``application_id``, ``team_id``,
    ``project_id``, ``team_ids``); a field the model does not have, or an empty one, says nothing."""
    fields = type(event).model_fields

    def text(name: str) -> str | None:
        value: Any = getattr(event, name, None) if name in fields else None
        return value if isinstance(value, str) and value else None

    teams: Any = getattr(event, "team_ids", None) if "team_ids" in fields else None
    teams = teams if isinstance(teams, list | tuple) else ()
    team_ids = tuple(dict.fromkeys(t for t in teams if isinstance(t, str) and t))[:MAX_TEAMS]
    return Audience(text("application_id"), text("team_id"), text("project_id"), team_ids)
