"""Tables of the api schema: identity, then projects, environments, applications and deployments."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

ROLE_CHECK = "role IN ('admin', 'developer', 'viewer')"

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
)

teams = sa.Table(
    "teams",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(63), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    # Bumped by triggers (api_0005) with every write that changes what the application list shows.
    sa.Column("revision", sa.BigInteger, nullable=False, server_default=sa.text("0")),
)

memberships = sa.Table(
    "memberships",
    metadata,
    sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint(ROLE_CHECK, name="memberships_role"),
    sa.Index("memberships_team", "team_id"),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("prefix", sa.String(16), nullable=False, unique=True),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("api_tokens_team", "team_id"),
    sa.Index("api_tokens_user", "user_id"),
)

# --- projects, environments, applications, deployments (api_0003) ----------------------------------

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("description", sa.String(500), nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.UniqueConstraint("team_id", "name", name="projects_team_name"),
)

environments = sa.Table(
    "environments",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("project_id", sa.String(32), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.UniqueConstraint("project_id", "name", name="environments_project_name"),
    sa.Index("environments_team", "team_id"),
)

applications = sa.Table(
    "applications",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("project_id", sa.String(32), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    sa.Column("environment_id", sa.String(32), sa.ForeignKey("environments.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(32), nullable=False),
    sa.Column("config", sa.JSON, nullable=False),  # source, services, limits, restart policy (no values)
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("state", sa.String(16), server_default=sa.text("'active'"), nullable=False),  # active | removing
    sa.Column("removal_error", sa.Text, nullable=True),  # why the last removal failed (until the next DELETE)
    sa.Column("removal_phase", sa.String(16), nullable=True),  # while removing: cancelling, routes, draining...
    sa.Column("removal_version", sa.Integer, nullable=True),  # of the last removal_progressed applied
    sa.UniqueConstraint("environment_id", "name", name="applications_environment_name"),
    sa.CheckConstraint("state IN ('active', 'removing')", name="applications_state"),
    sa.Index("applications_team", "team_id", "name"),
)

variables = sa.Table(
    "variables",
    metadata,
    sa.Column("application_id", sa.String(32), sa.ForeignKey("applications.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("kind", sa.String(8), primary_key=True),  # runtime | build
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("secret", sa.Boolean, nullable=False),
    sa.Column("value", sa.Text, nullable=True),  # plain values only
    sa.Column("sealed", sa.LargeBinary, nullable=True),  # secret values: AES-GCM
    sa.CheckConstraint("kind IN ('runtime', 'build')", name="variables_kind"),
    sa.CheckConstraint(
        "(secret AND value IS NULL AND sealed IS NOT NULL) OR (NOT secret AND sealed IS NULL)",
        name="variables_secret_sealed",
    ),
)

hosts = sa.Table(
    "hosts",
    metadata,
    sa.Column("host", sa.String(253), primary_key=True),  # one owner per host name, platform-wide
    sa.Column("application_id", sa.String(32), sa.ForeignKey("applications.id", ondelete="CASCADE"), nullable=False),
    sa.Column("service", sa.String(32), nullable=False),
    sa.Column("generated", sa.Boolean, nullable=False),
    sa.Index("hosts_application", "application_id"),
)

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("application_id", sa.String(32), sa.ForeignKey("applications.id", ondelete="CASCADE"), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # deploy | rollback
    sa.Column("rollback_of", sa.String(32), nullable=True),
    sa.Column("created_by", sa.String(32), nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("step", sa.String(200), nullable=False),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("image", sa.String(255), nullable=True),
    sa.Column("image_digest", sa.String(512), nullable=True),  # repo@sha256:... of a pulled image (api_0009)
    sa.Column("commit", sa.String(64), nullable=True),
    sa.Column("generated_dockerfile", sa.Text, nullable=True),
    sa.Column("previous_deployment_id", sa.String(64), nullable=True),
    sa.Column("duration_s", sa.Float, nullable=True),
    sa.Column("spec", sa.JSON, nullable=False),  # the snapshot sent, secret values sealed
    sa.Column("options", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True),
    # failed or cancelled: the state it was in then (queued, building, ... stopping_old; api_0030)
    sa.Column("ended_in", sa.String(16), nullable=True),
    # when image retention removed the image it ran (``evt.application.images_pruned``; api_0031)
    sa.Column("images_pruned_at", sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint(
        "state IN ('queued', 'building', 'starting', 'verifying', 'routing', 'draining', 'stopping_old', "
        "'succeeded', 'failed', 'cancelled')",
        name="deployments_state",
    ),
    sa.UniqueConstraint("application_id", "number", name="deployments_application_number"),
    sa.Index("deployments_app_created", "application_id", "created_at"),
    sa.Index("deployments_app_finished", "application_id", "state", "finished_at"),
)

# --- invitations, audit log, environment variables and groups (api_0004) ----------------------------

invitations = sa.Table(
    "invitations",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("prefix", sa.String(16), nullable=False, unique=True),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("created_by", sa.String(32), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("accepted_by", sa.String(32), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint(ROLE_CHECK, name="invitations_role"),
    sa.Index("invitations_team", "team_id", "created_at"),
)

# No foreign keys: audit rows outlive what they name.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("team_id", sa.String(32), nullable=False),
    sa.Column("user_id", sa.String(32), nullable=True),
    sa.Column("token_id", sa.String(32), nullable=True),
    sa.Column("method", sa.String(10), nullable=False),
    sa.Column("route", sa.String(300), nullable=False),
    sa.Column("target_id", sa.String(64), nullable=True),
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column("fields", sa.JSON, nullable=True),  # top-level field names of the body, never values
    sa.Column("source", sa.String(64), nullable=True),  # the client's address
    sa.Index("audit_log_team", "team_id", "id"),
    sa.Index("audit_log_at", "at"),  # the retention purge finds the oldest rows (api_0007)
)

env_groups = sa.Table(
    "env_groups",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("redeploy_on_change", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.UniqueConstraint("team_id", "name", name="env_groups_team_name"),
)

group_attachments = sa.Table(
    "group_attachments",
    metadata,
    sa.Column("group_id", sa.String(32), sa.ForeignKey("env_groups.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("application_id", sa.String(32), sa.ForeignKey("applications.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False),  # attach order = precedence among groups
    sa.Index("group_attachments_application", "application_id", "seq"),
)


def _variable_table(name: str, owner: str, owner_table: str) -> sa.Table:
    """Variables of an environment or a group: like an application's, each runtime or build-time."""
    return sa.Table(
        name,
        metadata,
        sa.Column(owner, sa.String(32), sa.ForeignKey(f"{owner_table}.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("secret", sa.Boolean, nullable=False),
        sa.Column("value", sa.Text, nullable=True),
        sa.Column("sealed", sa.LargeBinary, nullable=True),
        sa.CheckConstraint("kind IN ('runtime', 'build')", name=f"{name}_kind"),
        sa.CheckConstraint(
            "(secret AND value IS NULL AND sealed IS NOT NULL) OR (NOT secret AND sealed IS NULL)",
            name=f"{name}_secret_sealed",
        ),
    )


environment_variables = _variable_table("environment_variables", "environment_id", "environments")
group_variables = _variable_table("group_variables", "group_id", "env_groups")

# --- registries (api_0009) ---------------------------------------------------------------------------

# A team's credentials for one image registry; the password or token sealed (``SecretBox``, aad
# ``registry:<id>``), never returned.
registries = sa.Table(
    "registries",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("username", sa.String(255), nullable=False),
    sa.Column("sealed", sa.LargeBinary, nullable=False),
    sa.Column("created_by", sa.String(32), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    # api_0012: the team's push target for builds (at most one), and the namespace its images go under
    sa.Column("push", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("namespace", sa.String(200), nullable=True),
    sa.UniqueConstraint("team_id", "name", name="registries_team_name"),
    sa.UniqueConstraint("team_id", "host", name="registries_team_host"),
    sa.Index("registries_team_push", "team_id", "push", unique=True, postgresql_where=sa.text("push")),
)

# --- servers (api_0010) ------------------------------------------------------------------------------

# A team's servers reached over SSH: the private key sealed (``SecretBox``, aad ``server:<id>``), never
# returned; the host key pinned at first contact; what the last validation found (``attempt`` orders the
# answers).
SERVER_STATES = "state IN ('validating', 'ready', 'unreachable', 'invalid', 'draining')"
servers = sa.Table(
    "servers",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("host", sa.String(253), nullable=False),
    sa.Column("port", sa.Integer, nullable=False),
    sa.Column("user", sa.String(32), nullable=False),
    sa.Column("sealed", sa.LargeBinary, nullable=False),
    sa.Column("public_key", sa.Text, nullable=False),
    sa.Column("host_key", sa.Text, nullable=True),
    sa.Column("offered_host_key", sa.Text, nullable=True),
    sa.Column("state", sa.String(16), nullable=False, server_default="validating"),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("checks", sa.JSON, nullable=False),
    sa.Column("docker_version", sa.String(64), nullable=True),
    sa.Column("architecture", sa.String(32), nullable=True),
    sa.Column("free_bytes", sa.BigInteger, nullable=True),
    sa.Column("attempt", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Column("validated_at", sa.DateTime(timezone=True), nullable=True),
    # grows with every change announced in ``evt.server.changed`` (the other services keep the highest)
    sa.Column("revision", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("created_by", sa.String(32), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.UniqueConstraint("team_id", "name", name="servers_team_name"),
    sa.CheckConstraint(SERVER_STATES, name="servers_state"),
)

# A team's Swarms (``/v1/swarms``): a manager server and worker servers of the team (or an adopted Swarm);
# the scheduler forms it and answers with its nodes (``attempt`` orders the answers). Join tokens are never
# here: the scheduler keeps them sealed.
SWARM_STATES = "state IN ('forming', 'ready', 'failed')"
swarms = sa.Table(
    "swarms",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("manager_server_id", sa.String(32), nullable=False),
    sa.Column("worker_server_ids", sa.JSON, nullable=False),
    sa.Column("adopt", sa.Boolean, nullable=False),
    sa.Column("network", sa.String(63), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, server_default="forming"),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("cluster_id", sa.String(64), nullable=True),
    sa.Column("nodes", sa.JSON, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Column("formed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_by", sa.String(32), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.UniqueConstraint("team_id", "name", name="swarms_team_name"),
    sa.CheckConstraint(SWARM_STATES, name="swarms_state"),
)
