"""One named volume at two paths of a service through the plain application api (as compose files mount a
data and a config directory of one volume): stored, shown and sent in the deployment's snapshot as two
mounts of one volume; the same path given twice is a 422 naming the repeated one."""

from __future__ import annotations

import pytest

from tests.api.conftest import make_app
from tests.api.test_volumes_api import _body, _environment, _error

TWO_PATHS = [{"name": "data", "path": "/var/lib/app", "single_writer": True}, {"name": "data", "path": "/etc/app"}]


async def test_one_volume_at_two_paths_is_stored_and_sent_as_two_mounts(client, members, scheduler):
    app = await make_app(client, members.developer, _body(replicas=1, strategy="recreate", volumes=TWO_PATHS))
    (web,) = [s for s in app["services"] if s["name"] == "web"]
    assert web["volumes"] == TWO_PATHS
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    (start,) = [c for c in await scheduler.wait_for("cmd.deployment.start") if c.data["application_id"] == app["id"]]
    (sent,) = [s for s in start.data["spec"]["services"] if s["name"] == "web"]
    assert sent["volumes"] == TWO_PATHS


@pytest.mark.parametrize(
    ("volumes", "loc"),
    [
        ([{"name": "data", "path": "/data"}, {"name": "data", "path": "/data"}], "/body/services/0/volumes/1/path"),
        (
            [{"name": "a", "path": "/x"}, {"name": "b", "path": "/y"}, {"name": "c", "path": "/x"}],
            "/body/services/0/volumes/2/path",
        ),
    ],
)
async def test_the_same_path_twice_is_refused_naming_it(client, members, volumes, loc):
    env = await _environment(client, members.developer)
    body = _body(replicas=1, volumes=volumes)
    err = _error(await client.post(f"/v1/environments/{env}/applications", headers=members.developer, json=body))
    assert err["loc"] == loc
    assert err["detail"] == f"{volumes[-1]['path']} is already a mount path of this service"
