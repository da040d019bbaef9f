"""The api with a given secret key on a provisioned database, and another team's admin: what the tests of
servers across services (draining, metrics of added servers) start the same way."""

from __future__ import annotations

from pathlib import Path

from berth_api.settings import ApiSettings
from berth_cli.components import free_port
from tests.api.conftest import Identities, RunningApi, bearer, start_api


async def api_on(
    nats_url: str, api_url: str, data_dir: Path, secret_key: str, published_ports_allow: tuple[str, ...] = ()
) -> RunningApi:
    """The api on its role's URL (from ``provision``), sealing with ``secret_key``; every team may publish the
    compose ports of ``published_ports_allow`` (BERTH_PUBLISHED_PORTS_ALLOW, none by default)."""
    settings = ApiSettings(
        nats_url=nats_url,
        database_url=api_url,
        http_port=free_port(),
        data_dir=data_dir,
        secret_key=secret_key,
        shutdown_grace_s=10,
        published_ports_allow=list(published_ports_allow),
    )
    return await start_api(settings)


async def other_team_admin(ids: Identities) -> dict[str, str]:
    """The headers of an admin of another team (``other``)."""
    user = await ids.member("boss@other.example", "admin", team="other")
    token, _ = await ids.token(user, team="other")
    return bearer(token)
