"""The dashboard's sign-in sessions (api_0027), on the metadata of ``adapters/tables.py`` (here, not in the
dashboard's package, so key rotation re-seals them without loading the dashboard).

The cookie holds a random session key; the row is found by its SHA-256 (``id``), so a database reader
cannot use a row as a cookie. The API token the person signed in with is sealed (``SecretBox``, aad
``session_aad``) and opened only to call the REST API for that person. ``csrf`` is the per-session
secret every form carries back."""

from __future__ import annotations

import sqlalchemy as sa

from berth_api.adapters.tables import metadata

ui_sessions = sa.Table(
    "ui_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("sealed_token", sa.LargeBinary, nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("label", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ui_sessions_expires", "expires_at"),
)


def session_aad(row_id: str) -> str:
    """What a session's sealed token is bound to: its row."""
    return f"ui_session:{row_id}"
