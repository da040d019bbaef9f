"""api: the team's revision is bumped when a deployment is queued, changes state or is deleted, since the
application list shows each application's newest deployment (``last_deployment``) and a cached page of it
is valid only while the team's revision holds (api_0005)."""

from berth_common.db.revision import sql, steps

revision = "api_0028"
down_revision = "api_0027"

upgrade, downgrade = steps(
    sql(
        "CREATE TRIGGER deployments_bump_team_revision AFTER INSERT OR DELETE OR UPDATE OF state ON deployments "
        "FOR EACH ROW EXECUTE FUNCTION bump_team_revision('team')",
        "DROP TRIGGER deployments_bump_team_revision ON deployments",
    ),
)
