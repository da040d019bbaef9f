"""The api's tables for private repositories (api_0023); on the metadata of ``tables.py``.

``git_credentials``: at most one deploy key and one access token per application (``kind``), the secret
sealed (``SecretBox``, aad ``git-credential:<id>``, re-sealed by key rotation); a deploy key's public key
and a token's user name are kept in the clear to show.
``git_host_keys``: the SSH host keys pinned for an application's git server, each with where it came from
(``first-contact``: read by the builder the first time; ``given``: by a user; ``accepted``: a changed key
accepted by an admin) and when; and the keys a server presented instead (``offered``), until an admin
accepts them.
"""

from __future__ import annotations

import sqlalchemy as sa

from berth_api.adapters.tables import metadata

git_credentials = sa.Table(
    "git_credentials",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("application_id", sa.String(32), sa.ForeignKey("applications.id", ondelete="CASCADE"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # deploy_key | token
    sa.Column("sealed", sa.LargeBinary, nullable=False),
    sa.Column("public_key", sa.Text, nullable=True),  # a deploy key's, as authorized_keys takes it
    sa.Column("username", sa.String(255), nullable=True),  # a token's
    sa.Column("created_by", sa.String(32), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("application_id", "kind", name="git_credentials_one_per_kind"),
)

git_host_keys = sa.Table(
    "git_host_keys",
    metadata,
    sa.Column("application_id", sa.String(32), sa.ForeignKey("applications.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("host", sa.String(300), primary_key=True),  # as known_hosts names it: host, or [host]:port
    sa.Column("key_type", sa.String(40), primary_key=True),
    sa.Column("offered", sa.Boolean, primary_key=True),  # presented by the server, not pinned: for an admin to accept
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # first-contact | given | accepted | offered
    sa.Column("pinned_by", sa.String(32), nullable=True),
    sa.Column("pinned_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)
