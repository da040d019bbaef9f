"""api: a team's image registry can be the push target of its builds (at most one per team), with the
namespace the built images go under."""

from berth_api.adapters import tables as t
from berth_common.db.revision import columns, steps

revision = "api_0012"
down_revision = "api_0011"
upgrade, downgrade = steps(columns(t.registries, "push namespace"))
