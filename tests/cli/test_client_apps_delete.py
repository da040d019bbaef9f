"""``berth apps delete`` against the real api (the scheduler's stand-in plays the rollout): refused without
``--yes`` when there is no terminal to ask, a never-deployed application deleted at once, a deployed one
handed to the scheduler with the named volumes it keeps (or deletes with ``--with-volumes``) listed, by exact
output."""

from __future__ import annotations

import json

from tests.api.conftest import make_app
from tests.api.test_application_removal import _body
from tests.api.test_volumes_api import _with_volumes


async def test_delete_says_what_is_kept(logged_in, client, members, scheduler):
    berth = logged_in
    app = await _with_volumes(client, members, scheduler, "keep")
    r = await berth("apps", "delete", "keep")
    assert (r.code, r.out) == (2, "")
    assert r.err == "berth: Delete application acme/production/keep needs --yes (there is no terminal to ask)\n"
    assert (await client.get(f"/v1/applications/{app['id']}", headers=members.viewer)).json()["state"] == "active"

    r = await berth("apps", "delete", "acme/keep", "--yes")
    assert (r.code, r.err) == (0, "")
    assert r.out == (
        "Removing application acme/production/keep: its containers, routes and images are taken down\n"
        "\n"
        "Volumes kept (their data stays on the servers):\n"
        "SERVER  VOLUME  DOCKER NAME\n"
        f"local   data    berth-{app['id']}-data\n"
        f"local   spool   berth-{app['id']}-spool\n"
    )
    (cmd,) = [c for c in await scheduler.wait_for("cmd.application.remove") if c.data["application_id"] == app["id"]]
    assert "delete_volumes" not in cmd.data

    dropped = await _with_volumes(client, members, scheduler, "drop")
    r = await berth("apps", "delete", "drop", "--with-volumes", "-y")
    assert r.out == (
        "Removing application acme/production/drop: its containers, routes and images are taken down\n"
        "\n"
        "Volumes deleted:\n"
        "SERVER  VOLUME  DOCKER NAME\n"
        f"local   data    berth-{dropped['id']}-data\n"
        f"local   spool   berth-{dropped['id']}-spool\n"
    )
    removes = await scheduler.wait_for("cmd.application.remove", 2)
    (cmd,) = [c for c in removes if c.data["application_id"] == dropped["id"]]
    assert cmd.data["delete_volumes"] is True

    fresh = await make_app(client, members.developer, _body("fresh"))
    r = await berth("apps", "delete", "fresh", "--yes")
    assert (r.code, r.out) == (0, "Deleted application acme/production/fresh (it was never deployed)\n")
    assert (await client.get(f"/v1/applications/{fresh['id']}", headers=members.viewer)).status_code == 404

    plain = await make_app(client, members.developer, _body("plain"))
    await berth("apps", "delete", "plain", "--yes", "--json")
    assert (await client.get(f"/v1/applications/{plain['id']}", headers=members.viewer)).status_code == 404
    r = await berth("apps", "delete", "nothere", "--yes")
    assert (r.code, r.err) == (1, "berth: Not found: no application 'nothere'\n")
    r = await berth("apps", "delete", "keep", "--yes", "--json")  # being removed: 202 again, as JSON
    assert json.loads(r.out)["state"] == "removing"
