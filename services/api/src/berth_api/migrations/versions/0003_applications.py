"""api: projects, environments, applications (variables sealed, hosts), deployments and their projection."""

from berth_api.adapters import tables as t
from berth_common.db.revision import steps, table

revision = "api_0003"
down_revision = "api_0002"
DEPLOYMENTS = """id team_id application_id number kind rollback_of created_by state step detail reason image commit
generated_dockerfile previous_deployment_id duration_s spec options created_at updated_at started_at finished_at
last_event_at cancel_requested_at"""

upgrade, downgrade = steps(
    table(t.projects, "id team_id name description created_at updated_at"),
    table(t.environments, "id team_id project_id name created_at"),
    table(t.applications, "id team_id project_id environment_id name config created_at updated_at"),
    table(t.variables, "application_id kind name position secret value sealed"),
    table(t.hosts, "host application_id service generated"),
    table(t.deployments, DEPLOYMENTS),
)
