"""Invitations: single-use, expiring codes that let a new member join a team. Pure rules, no I/O.

An invitation code is ``berthinv_<prefix>_<secret>`` (the prefix finds the row, only a SHA-256 of the secret
is stored, as for API tokens). It is shown once, when the invitation is made. Accepting it creates the
user (or reuses the one with that e-mail: a user may belong to several teams), the membership and a first
API token bound to the team.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from berth_api.domain import tokens

SCHEME = "berthinv"
CODE_RE = re.compile(r"^berthinv_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
State = Literal["pending", "accepted", "revoked", "expired"]


@dataclass(frozen=True)
class NewCode:
    token: tokens.NewToken

    @property
    def plaintext(self) -> str:
        return f"{SCHEME}_{self.token.prefix}_{self.token.secret}"

    def __repr__(self) -> str:
        return f"NewCode(prefix={self.token.prefix!r})"


def generate() -> NewCode:
    return NewCode(tokens.generate())


def parse(code: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed code, else None."""
    if len(code) > 80:
        return None
    m = CODE_RE.fullmatch(code)
    return (m.group(1), m.group(2)) if m else None


def state_of(accepted_at: datetime | None, revoked_at: datetime | None, expires_at: datetime, now: datetime) -> State:
    if accepted_at is not None:
        return "accepted"
    if revoked_at is not None:
        return "revoked"
    if expires_at <= now:
        return "expired"
    return "pending"
