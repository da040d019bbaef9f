"""A compose application's services are checked as a deployment will carry them when the application is
created, not first at its deployment: two services claiming one network alias are a 422 at once."""

from __future__ import annotations

from tests.api.conftest import make_app
from tests.api.test_projects import problem

TWICE = """services:
  a:
    image: busybox
    networks:
      default:
        aliases: [shared]
  b:
    image: busybox
    networks:
      default:
        aliases: [shared]
"""


async def test_an_alias_claimed_twice_is_refused_at_creation(client, members) -> None:
    probe = {"name": "probe", "compose": {"inline": "services:\n  probe:\n    image: busybox\n"}}
    env = (await make_app(client, members.developer, probe))["environment_id"]
    r = await client.post(
        f"/v1/environments/{env}/applications",
        headers=members.developer,
        json={"name": "twice", "compose": {"inline": TWICE}},
    )
    (err,) = problem(r, 422)["errors"]
    assert "shared" in err["detail"] and "not accepted for a deployment" in err["detail"], err
    listed = (await client.get("/v1/applications", headers=members.viewer)).json()
    assert [a["name"] for a in listed] == ["probe"]  # nothing half-written
