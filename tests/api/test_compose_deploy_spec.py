"""A compose application's deployment snapshot as the api builds it from the translation: the dangerous keys
an administrator allowed become the service's privileges; ``network_mode: host`` is refused by name (409);
a ``build:`` that is not the application's own build is carried as the service's own ``build``."""

from __future__ import annotations

import pytest

from tests.api.conftest import make_app
from tests.api.test_projects import problem


@pytest.fixture
def api_settings(api_settings):
    """The conftest's settings with the dangerous keys an administrator allows."""
    allow = ["cap_add", "privileged", "devices", "security_opt", "pid", "ipc", "network_mode"]
    return api_settings.model_copy(update={"compose_allow": allow})


async def _deploy(client, members, text: str, **extra) -> object:
    app = await make_app(client, members.developer, {"name": "stack", "compose": {"inline": text}, **extra})
    return await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)


async def test_allowed_keys_become_the_services_privileges(client, members) -> None:
    text = (
        "services:\n  vpn:\n    image: berth/vpn:1\n    privileged: true\n    cap_add: [NET_ADMIN]\n"
        "    devices: ['/dev/net/tun']\n    security_opt: ['no-new-privileges:true']\n    pid: host\n"
        "    ipc: host\n    environment: {MODE: vpn, FROM_APP: null}\n    user: '1000'\n"
        "    working_dir: /srv\n    entrypoint: [/init]\n"
    )
    r = await _deploy(client, members, text)
    assert r.status_code == 202, r.text
    (vpn,) = r.json()["spec"]["services"]
    assert vpn["privileges"] == {
        "privileged": True,
        "cap_add": ["NET_ADMIN"],
        "devices": [{"source": "/dev/net/tun", "target": "/dev/net/tun", "permissions": "rwm"}],
        "security_opt": ["no-new-privileges:true"],
        "pid_host": True,
        "ipc_host": True,
    }
    assert vpn["env"] == [{"name": "MODE", "value": "vpn", "secret": False}]  # FROM_APP: the application's
    assert (vpn["user"], vpn["working_dir"], vpn["entrypoint"]) == ("1000", "/srv", ["/init"])
    assert "image" not in vpn  # the application's image is this service's


async def test_network_mode_host_is_refused_at_deployment(client, members) -> None:
    r = await _deploy(client, members, "services:\n  edge:\n    image: berth/edge:1\n    network_mode: host\n")
    body = problem(r, 409)
    assert body["type"].endswith("compose-not-deployable") and "edge asks for network_mode: host" in body["detail"]


async def test_a_build_that_is_not_the_applications_own_is_the_services_own_build(client, members) -> None:
    git = {"kind": "git", "repository": "https://github.com/acme/stats.git", "branch": "main"}
    text = (
        "services:\n  web:\n    build: .\n    ports: ['3000']\n  api:\n    build:\n      context: ./api\n"
        "      dockerfile: Containerfile\n      args: {MODE: fast, UNSET: null}\n"
    )
    r = await _deploy(client, members, text, source=git)
    assert r.status_code == 202, r.text
    web, api = r.json()["spec"]["services"]
    assert "build" not in web and "image" not in web  # the application's own build is this service's
    assert api["build"] == {
        "subdirectory": "api",
        "dockerfile": "Containerfile",
        "build_args": [{"name": "MODE", "value": "fast", "secret": False}],  # UNSET: not an arg of the app
    }
    assert "image" not in api


async def test_tty_and_stdin_open_are_carried_into_the_services_spec(client, members) -> None:
    # Coolify's terraria-server: the server waits on its console
    text = (
        "services:\n  terraria-server:\n    image: ryshe/terraria:latest\n    tty: true\n    stdin_open: true\n"
        "  db:\n    image: berth/db:1\n    tty: false\n"
    )
    r = await _deploy(client, members, text)
    assert r.status_code == 202, r.text
    server, db = sorted(r.json()["spec"]["services"], key=lambda s: s["name"] != "terraria-server")
    assert (server["tty"], server["stdin_open"]) == (True, True)
    assert "tty" not in db and "stdin_open" not in db
