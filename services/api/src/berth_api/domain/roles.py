"""Team roles: admin > developer > viewer. A role allows everything a lower role allows."""

from __future__ import annotations

from typing import Literal, TypeGuard, get_args

Role = Literal["viewer", "developer", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
_RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLES)}


def is_role(value: str) -> TypeGuard[Role]:
    return value in _RANK


def allows(actual: str, required: Role) -> bool:
    """True when a member with role ``actual`` may do what ``required`` may do."""
    return actual in _RANK and _RANK[actual] >= _RANK[required]
