"""What the platform's administrator allows one team (BERTH_COMPOSE_ALLOW_TEAMS, BERTH_BIND_MOUNT_ALLOW_TEAMS):
the team's compose files may use those dangerous keys and host paths; every other team is still refused."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from berth_api.adapters.tables import teams
from berth_api.settings import ApiSettings
from tests.api.conftest import make_app
from tests.api.test_projects import problem

TEAM_PATH = "/srv/team-only"
TEXT = f"services:\n  vpn:\n    image: berth/vpn:1\n    privileged: true\n    volumes: ['{TEAM_PATH}/conf:/conf']\n"


def _body(name: str) -> dict:
    return {"name": name, "compose": {"inline": TEXT}}


async def _team_id(identities, name: str) -> str:
    async with identities.sessionmaker() as s:
        return (await s.execute(select(teams.c.id).where(teams.c.name == name))).scalar_one()


async def _refused(client, headers, env_id: str) -> list[dict]:
    r = await client.post(f"/v1/environments/{env_id}/applications", headers=headers, json=_body("vpn-2"))
    return problem(r, 422)["errors"]


async def test_a_team_gets_what_the_administrator_allowed_it_and_no_other_team_does(
    api, client, members, identities
) -> None:
    probe = {"name": "probe", "compose": {"inline": "services:\n  probe:\n    image: busybox\n"}}
    mine = (await make_app(client, members.developer, probe))["environment_id"]
    theirs = (await make_app(client, members.other, probe))["environment_id"]
    (err,) = await _refused(client, members.developer, mine)
    assert err["loc"] == "/body/compose/services/vpn/privileged" and "BERTH_COMPOSE_ALLOW_TEAMS" in err["detail"]

    default = await _team_id(identities, "default")
    api.settings.compose_allow_teams[default] = ["privileged"]
    api.settings.bind_mount_allow_teams[default] = [TEAM_PATH]

    app = await make_app(client, members.developer, _body("vpn"))
    (vpn,) = app["compose"]["translated"]["services"]
    assert vpn["allowed"] == {"privileged": True}
    assert vpn["binds"][0]["host_path"] == f"{TEAM_PATH}/conf"

    errors = await _refused(client, members.other, theirs)
    assert [e["loc"] for e in errors] == ["/body/compose/services/vpn/privileged"]
    api.settings.compose_allow_teams[await _team_id(identities, "other")] = ["privileged"]
    (err,) = await _refused(client, members.other, theirs)  # the key now, the path still not
    assert err["loc"].startswith("/body/compose/services/vpn/volumes") and TEAM_PATH not in err["detail"]
    assert "BERTH_BIND_MOUNT_ALLOW_TEAMS" in err["detail"]


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"compose_allow_teams": {"t1": ["privileged", "root"]}}, "BERTH_COMPOSE_ALLOW_TEAMS: t1: not a dangerous"),
        ({"bind_mount_allow_teams": {"t1": ["relative/path"]}}, "BERTH_BIND_MOUNT_ALLOW_TEAMS: t1: 'relative/path'"),
    ],
)
def test_a_bad_allowance_stops_the_api_at_start(api_settings, update, message) -> None:
    with pytest.raises(ValueError, match=message):
        ApiSettings(**{**api_settings.model_dump(), **update})


def test_the_platforms_list_and_the_teams_own_add_up(api_settings) -> None:
    settings = ApiSettings(
        **{
            **api_settings.model_dump(),
            "compose_allow": ["cap_add"],
            "compose_allow_teams": {"t1": ["privileged"]},
            "bind_mount_allow": ["/srv/all"],
            "bind_mount_allow_teams": {"t1": ["/srv/t1", "/srv/all"]},
        }
    )
    assert settings.compose_allowed("t1") == {"cap_add", "privileged"}
    assert settings.compose_allowed("t2") == {"cap_add"} == settings.compose_allowed(None)
    assert settings.bind_roots("t1") == ["/srv/all", "/srv/t1"]
    assert settings.bind_roots("t2") == ["/srv/all"]
