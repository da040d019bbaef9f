"""api: a team's servers (reached over SSH; private key sealed, host key pinned, last validation)."""

from berth_api.adapters import tables as t
from berth_common.db.revision import check, steps, table

revision = "api_0010"
down_revision = "api_0009"
COLUMNS = (
    "id team_id name host port user sealed public_key host_key offered_host_key state reason checks "
    "docker_version architecture free_bytes attempt validated_at created_by created_at"
)
STATES = "state IN ('validating', 'ready', 'unreachable', 'invalid')"  # before api_0012
upgrade, downgrade = steps(table(t.servers, COLUMNS, omit=["servers_state"]), check("servers_state", t.servers, STATES))
