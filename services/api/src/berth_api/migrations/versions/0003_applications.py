"""api: projects, environments, applications (variables sealed, hosts), deployments and their projection.

Revision ID: api_0003
Revises: api_0002
"""

from alembic import op

from berth_api.adapters import tables as t
from berth_common.db.revision import create_table, drop_tables

revision = "api_0003"
down_revision = "api_0002"


def upgrade() -> None:
    create_table(op, t.projects, "id team_id name description created_at updated_at")
    create_table(op, t.environments, "id team_id project_id name created_at")
    op.create_index("environments_team", "environments", ["team_id"])
    create_table(op, t.applications, "id team_id project_id environment_id name config created_at updated_at")
    op.create_index("applications_team", "applications", ["team_id", "name"])
    create_table(op, t.variables, "application_id kind name position secret value sealed")
    create_table(op, t.hosts, "host application_id service generated")
    op.create_index("hosts_application", "hosts", ["application_id"])
    create_table(
        op,
        t.deployments,
        """id team_id application_id number kind rollback_of created_by state step detail reason image commit
        generated_dockerfile previous_deployment_id duration_s spec options created_at updated_at started_at
        finished_at last_event_at cancel_requested_at""",
    )
    op.create_index("deployments_app_created", "deployments", ["application_id", "created_at"])
    op.create_index("deployments_app_finished", "deployments", ["application_id", "state", "finished_at"])


def downgrade() -> None:
    drop_tables(op, t.deployments, t.hosts, t.variables, t.applications, t.environments, t.projects)
