"""api: a revision number per team, bumped by every write that changes what the application list shows.

``teams.revision`` is read with the token in the authentication query; a cached page of the application
list is valid while the team's revision is the one it was cached under. Triggers bump it in the same
transaction as the write (whoever writes: a use case, an import, a future route), on applications,
environments, projects, an application's variables (not when only the sealed value of a secret changes:
the list shows no secret value, and a key rotation re-seals every one) and its host names.
"""

from berth_api.adapters import tables as t
from berth_common.db.revision import columns, sql, steps

revision = "api_0005"
down_revision = "api_0004"

FUNCTION = """
CREATE FUNCTION bump_team_revision() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    rec record;
    team varchar;
BEGIN
    IF TG_OP = 'DELETE' THEN rec := OLD; ELSE rec := NEW; END IF;
    IF TG_ARGV[0] = 'team' THEN
        team := rec.team_id;
    ELSE  -- an application's row: its application may be gone already (a cascade), then it bumped itself
        SELECT a.team_id INTO team FROM applications a WHERE a.id = rec.application_id;
    END IF;
    IF team IS NOT NULL THEN
        UPDATE teams SET revision = revision + 1 WHERE id = team;
    END IF;
    RETURN NULL;
END
$$
"""

# table -> (how its team is found, the events that change what the list shows)
TRIGGERS = {
    "applications": ("team", "INSERT OR UPDATE OR DELETE"),
    "environments": ("team", "INSERT OR UPDATE OR DELETE"),
    "projects": ("team", "INSERT OR UPDATE OR DELETE"),
    "variables": ("application", "INSERT OR DELETE OR UPDATE OF application_id, kind, name, position, secret, value"),
    "hosts": ("application", "INSERT OR UPDATE OR DELETE"),
}


upgrade, downgrade = steps(
    columns(t.teams, "revision"),
    sql(FUNCTION, "DROP FUNCTION bump_team_revision()"),
    *(
        sql(
            f"CREATE TRIGGER {table}_bump_team_revision AFTER {events} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION bump_team_revision('{owner}')",
            f"DROP TRIGGER {table}_bump_team_revision ON {table}",
        )
        for table, (owner, events) in TRIGGERS.items()
    ),
)
