"""The api's tables for HTTPS (api_0020): the certificates teams upload and the certificate state of each
host as proxy-sync reports it; on the metadata of ``tables.py`` (the rest of the api's schema)."""

from __future__ import annotations

import sqlalchemy as sa

from berth_api.adapters.tables import metadata

# A team's uploaded certificates: the PEM chain (leaf first) and what was read from it; the private key
# sealed (``SecretBox``, aad ``certificate:<id>``), never returned. ``application_id`` None: the team's,
# for any of its applications with one of ``hosts``; else that application's only (preferred).
certificates = sa.Table(
    "certificates",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("application_id", sa.String(32), sa.ForeignKey("applications.id", ondelete="CASCADE"), nullable=True),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("hosts", sa.JSON, nullable=False),  # the hosts it is served for
    sa.Column("names", sa.JSON, nullable=False),  # the DNS names of the leaf
    sa.Column("chain_pem", sa.Text, nullable=False),
    sa.Column("sealed", sa.LargeBinary, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("issuer", sa.Text, nullable=False),
    sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
    sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
    sa.Column("fingerprint_sha256", sa.String(95), nullable=False),
    sa.Column("key_type", sa.String(32), nullable=False),
    sa.Column("created_by", sa.String(32), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.UniqueConstraint("team_id", "name", name="certificates_team_name"),
    sa.Index("certificates_application", "application_id"),
)

# The certificate each host is served with on one server, from ``evt.certificate.issued`` / ``failed`` /
# ``expiring``: the last issued one (issuer, dates, source), the last error (stage, reason, when), and the
# last expiry warning. ``team_id`` / ``application_id`` as the event named them (the route's owner).
certificate_states = sa.Table(
    "certificate_states",
    metadata,
    sa.Column("host", sa.String(253), primary_key=True),
    sa.Column("server_id", sa.String(64), primary_key=True),
    sa.Column("team_id", sa.String(32), nullable=True),
    sa.Column("application_id", sa.String(32), nullable=True),
    sa.Column("source", sa.String(8), nullable=True),  # acme | custom
    sa.Column("issuer", sa.Text, nullable=True),
    sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
    sa.Column("not_after", sa.DateTime(timezone=True), nullable=True),
    sa.Column("domains", sa.JSON, nullable=False),
    sa.Column("fingerprint_sha256", sa.String(95), nullable=True),
    sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("error_stage", sa.String(16), nullable=True),  # dns | acme | custom
    sa.Column("error_reason", sa.Text, nullable=True),
    sa.Column("error_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("expiring_days_left", sa.Float, nullable=True),
    sa.Column("expiring_reason", sa.Text, nullable=True),
    sa.Column("expiring_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Index("certificate_states_application", "application_id"),
)
