"""Compose keys the catalogue sweeps found refused (issue 14): top-level volumes' ``driver_opts`` (a tmpfs, an
NFS or CIFS share: carried as the volume's options; ``o: bind``: a host bind mount under the allowed paths),
networks' ``driver_opts`` (the MTU) and ``ipam`` (the private network's subnet, with services pinning their
``ipv4_address``), and ``runtime`` (allowed per team by the administrator). Each translated exactly, each
refusal naming the key, through the translation and through the REST API (422 problem+json)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from berth_api.adapters.tables import teams
from berth_api.domain.compose import secret_refs
from berth_api.domain.compose.translate import Policy
from berth_api.usecases.compose_snapshot import compose_spec
from berth_common.catalogue import ApplicationSpec
from tests.api.conftest import make_app
from tests.api.test_compose_translate import _refusal, _translated
from tests.api.test_projects import problem

VOLUMES = """
services:
  app:
    image: busybox
    volumes: [cache:/cache, share:/share, files:/files:ro]
volumes:
  cache:
    driver: local
    driver_opts: {type: tmpfs, device: tmpfs, o: 'size=100m,uid=1000'}
  share:
    driver: local
    driver_opts: {type: nfs, o: 'addr=10.1.2.3,rw,nfsvers=4', device: ':/exports/data'}
  files:
    driver_opts: {type: cifs, o: 'username=app,vers=3.0', device: //files.example.com/share}
"""


def test_tmpfs_and_share_options_are_the_volumes_options() -> None:
    got = _translated(VOLUMES)
    assert got == {
        "services": [
            {
                "kind": "worker",
                "name": "app",
                "replicas": 1,
                "health_command": None,
                "command": None,
                "volumes": [
                    {"name": "cache", "path": "/cache", "single_writer": True},
                    {"name": "share", "path": "/share", "single_writer": True},
                    {"name": "files", "path": "/files", "read_only": True},
                ],
                "strategy": "recreate",
                "image": "busybox",
                "restart": "no",
            }
        ],
        "start_order": [["app"]],
        "restart_policy": "no",
        "volume_options": {
            "cache": {"type": "tmpfs", "device": "tmpfs", "o": "size=100m,uid=1000"},
            "share": {"type": "nfs", "device": ":/exports/data", "o": "addr=10.1.2.3,rw,nfsvers=4"},
            "files": {"type": "cifs", "device": "//files.example.com/share", "o": "username=app,vers=3.0"},
        },
        "notes": [],
    }


def test_a_bind_volume_is_a_host_bind_mount_under_the_allowed_paths() -> None:
    # erpnext's ``sites``, read-only by its mount or by its options
    text = "services:\n  app:\n    image: x\n    volumes: [sites:/sites, sites:/ro:ro]\nvolumes:\n  sites:\n"
    text += "    driver_opts: {type: none, o: bind, device: /srv/erp/sites}\n"
    got = _translated(text, policy=Policy(bind_allow=("/srv/erp",)))
    (app,) = got["services"]
    assert app["binds"] == [
        {"host_path": "/srv/erp/sites", "path": "/sites", "read_only": False},
        {"host_path": "/srv/erp/sites", "path": "/ro", "read_only": True},
    ]
    assert "volumes" not in app and "volume_options" not in got
    assert got["notes"] == ["volumes/sites: the host directory /srv/erp/sites, bind-mounted where it is mounted"]
    ro = _translated(text.replace("o: bind", "o: 'bind,ro'"), policy=Policy(bind_allow=("/srv",)))
    assert [b["read_only"] for b in ro["services"][0]["binds"]] == [True, True]
    err = _refusal(text, policy=Policy(bind_allow=("/srv/other",)))
    assert err.spot == "volumes/sites/driver_opts/device" and "(/srv/other)" in err.why


def test_options_all_empty_make_a_plain_volume() -> None:
    # Dokploy's erpnext: ``type: "${SITE_VOLUME_TYPE}"`` and its o and device, unset: Docker mounts nothing
    text = "services:\n  app:\n    image: x\n    volumes: [sites:/sites]\nvolumes:\n  sites:\n    driver_opts:\n"
    text += "      type: '${SITE_VOLUME_TYPE}'\n      o: '${SITE_VOLUME_OPTS}'\n      device: '${SITE_VOLUME_DEV}'\n"
    got = _translated(text)
    assert got["services"][0]["volumes"] == [{"name": "sites", "path": "/sites", "single_writer": True}]
    assert "volume_options" not in got
    assert got["notes"] == ["volumes/sites/driver_opts: empty: a plain volume, as Docker's local driver makes it"]
    assert _refusal(text, variables={"SITE_VOLUME_OPTS": "bind"}).spot == "volumes/sites/driver_opts/device"


def test_a_secret_variable_in_a_shares_options_is_refused_at_its_spot() -> None:
    # a password option naming one is the volume's secret (``test_compose_share_password.py``); any other not
    holders = secret_refs.placeholders(["CIFS_PW"], "n0nce")
    text = "services:\n  app:\n    image: x\n    volumes: [files:/f]\nvolumes:\n  files:\n    driver_opts:\n"
    text += "      {type: cifs, o: 'username=${CIFS_PW},password=${CIFS_PW}', device: //files.example.com/share}\n"
    err = _refusal(text, variables=holders, secrets_nonce="n0nce")
    assert err.spot == "volumes/files/driver_opts/o" and "a secret goes only into" in err.why


VOLUME_REFUSED = [
    ("driver: nfs", "volumes/vol/driver"),
    ("driver_opts: {type: tmpfs, device: tmpfs, size: 10m}", "volumes/vol/driver_opts/size"),
    ("driver_opts: {type: ext4, device: /dev/sdb1}", "volumes/vol/driver_opts/type"),
    ("driver_opts: {type: overlay, o: 'lowerdir=/etc'}", "volumes/vol/driver_opts/type"),
    ("driver_opts: {type: none, device: /srv/x}", "volumes/vol/driver_opts/type"),
    ("driver_opts: {type: tmpfs, device: tmpfs, o: 'size=1m,context=x'}", "volumes/vol/driver_opts/o"),
    ("driver_opts: {type: tmpfs, device: tmpfs, o: 'size=1m;reboot'}", "volumes/vol/driver_opts/o"),
    ("driver_opts: {type: nfs, o: 'addr=127.0.0.1,rw', device: ':/x'}", "volumes/vol/driver_opts/o"),
    ("driver_opts: {type: nfs, o: 'addr=169.254.169.254', device: ':/x'}", "volumes/vol/driver_opts/o"),
    ("driver_opts: {type: cifs, device: //localhost/share}", "volumes/vol/driver_opts/o"),
    ("driver_opts: {type: nfs, o: 'addr=10.0.0.2', device: ':/x y'}", "volumes/vol/driver_opts/device"),
    ("driver_opts: {type: ext4, o: bind, device: /srv/x}", "volumes/vol/driver_opts/type"),
    ("driver_opts: {type: none, o: 'bind,suid', device: /srv/x}", "volumes/vol/driver_opts/o"),
    ("driver_opts: {type: none, o: bind, device: /srv/../etc}", "volumes/vol/driver_opts/device"),
    ("driver_opts: {type: none, o: bind, device: relative}", "volumes/vol/driver_opts/device"),
    ("external: true", "volumes/vol/external"),
]


@pytest.mark.parametrize(("line", "spot"), VOLUME_REFUSED, ids=[line for line, _ in VOLUME_REFUSED])
def test_what_a_volume_cannot_carry_is_refused_by_name(line: str, spot: str) -> None:
    text = f"services:\n  app:\n    image: x\n    volumes: [vol:/vol]\nvolumes:\n  vol:\n    {line}\n"
    assert _refusal(text, policy=Policy(bind_allow=("/srv",))).spot == spot


NETWORKS = """
services:
  web:
    image: x
    ports: ['8080']
    networks:
      front: {ipv4_address: 10.30.0.10, aliases: [www]}
  db:
    image: x
    networks: [front, back]
networks:
  front:
    driver: bridge
    driver_opts: {com.docker.network.driver.mtu: 1400}
    ipam:
      driver: default
      config:
        - subnet: 10.30.0.0/24
          gateway: 10.30.0.1
  back: {}
"""


def test_a_pinned_subnet_mtu_and_address_are_the_private_networks() -> None:
    got = _translated(NETWORKS)
    assert got["network_options"] == {"mtu": 1400, "subnet": "10.30.0.0/24", "gateway": "10.30.0.1"}
    web, db = got["services"]
    assert (web["ipv4_address"], web["strategy"], web["aliases"]) == ("10.30.0.10", "recreate", ["www"])
    assert "ipv4_address" not in db and "strategy" not in db
    plain = _translated("services:\n  a:\n    image: x\nnetworks:\n  n: {driver_opts: {}}\n")
    assert "network_options" not in plain


NETWORK_REFUSED = [
    ("com.docker.network.driver.mtu: 1400", "com.docker.network.bridge.name: br-app", "bridge.name"),
    ("com.docker.network.driver.mtu: 1400", "com.docker.network.driver.mtu: 100", "mtu"),
    ("com.docker.network.driver.mtu: 1400", "com.docker.network.bridge.enable_icc: 'false'", "enable_icc"),
    ("        - subnet: 10.30.0.0/24", "        - subnet: 8.8.8.0/24", "subnet"),
    ("        - subnet: 10.30.0.0/24", "        - subnet: 172.17.5.0/24", "subnet"),
    ("        - subnet: 10.30.0.0/24", "        - subnet: 10.0.0.0/8", "subnet"),
    ("        - subnet: 10.30.0.0/24", "        - subnet: 10.30.0.1/24", "subnet"),
    ("          gateway: 10.30.0.1", "          gateway: 10.31.0.1", "gateway"),
    ("          gateway: 10.30.0.1", "          ip_range: 10.30.0.0/25", "ip_range"),
    ("      driver: default", "      driver: infoblox", "driver"),
    ("      front: {ipv4_address: 10.30.0.10", "      front: {ipv4_address: 10.40.0.10", "ipv4_address"),
    ("      front: {ipv4_address: 10.30.0.10", "      front: {ipv4_address: 10.30.0.1", "ipv4_address"),
    ("    ports: ['8080']", "    ports: ['8080']\n    deploy: {replicas: 2}", "ipv4_address"),
]


@pytest.mark.parametrize(("old", "new", "spot"), NETWORK_REFUSED, ids=[f"{s}-{n}" for _, n, s in NETWORK_REFUSED])
def test_what_a_network_cannot_honour_is_refused_by_name(old: str, new: str, spot: str) -> None:
    assert old in NETWORKS
    err = _refusal(NETWORKS.replace(old, new))
    assert err.spot.endswith(spot), err


def test_an_address_without_a_pinned_subnet_or_on_an_internal_network_and_two_subnets_are_refused() -> None:
    no_ipam = NETWORKS.replace("    ipam:", "    x-ipam:")
    assert _refusal(no_ipam).spot == "services/web/networks/front/ipv4_address"
    internal = NETWORKS.replace("  back: {}", "  back: {internal: true, ipam: {config: [{subnet: 10.9.0.0/24}]}}")
    assert _refusal(internal).spot == "networks/back/ipam"
    two = NETWORKS.replace("  back: {}", "  back: {ipam: {config: [{subnet: 10.9.0.0/24}]}}")
    err = _refusal(two)  # the normalised model's networks in name order: back's subnet first
    assert err.spot == "networks/front/ipam" and "10.9.0.0/24" in err.why


def test_a_runtime_is_refused_unless_the_administrator_allowed_it_for_the_team() -> None:
    text = "services:\n  ml:\n    image: x\n    runtime: nvidia\n"
    err = _refusal(text, policy=Policy(runtimes=frozenset({"runsc"})))
    assert err.spot == "services/ml/runtime" and "BERTH_COMPOSE_RUNTIMES_TEAMS" in err.why
    (ml,) = _translated(text, policy=Policy(runtimes=frozenset({"nvidia"})))["services"]
    assert ml["allowed"] == {"runtime": "nvidia"}
    (plain,) = _translated(text.replace("nvidia", "runc"))["services"]  # Docker's own
    assert plain["allowed"] == {"runtime": "runc"}
    assert _refusal(text.replace("nvidia", "'a b'")).spot == "services/ml/runtime"


def test_the_snapshot_carries_the_options_the_address_and_the_runtime() -> None:
    text = NETWORKS.replace(
        "  back: {}", "  back: {}\nvolumes:\n  cache:\n    driver_opts: {type: tmpfs, device: tmpfs}"
    )
    text = text.replace(
        "    networks: [front, back]", "    runtime: runsc\n    volumes: [cache:/c]\n    networks: [front, back]"
    )
    translated = _translated(text, policy=Policy(runtimes=frozenset({"runsc"})))
    core = [
        {k: s[k] for k in ("kind", "name", "port", "command", "volumes", "strategy") if k in s}
        for s in translated["services"]
    ]
    spec = ApplicationSpec.model_validate({"name": "s", "source": {"kind": "image", "image": "x"}, "services": core})
    got = compose_spec(spec, {"compose": {"inline": text}, "compose_translated": translated}, files=[])
    assert got.volume_options["cache"].model_dump() == {"type": "tmpfs", "device": "tmpfs"}
    assert got.network_options is not None
    assert got.network_options.model_dump() == {"subnet": "10.30.0.0/24", "gateway": "10.30.0.1", "mtu": 1400}
    web, db = got.services
    assert (web.ipv4_address, web.strategy, db.ipv4_address) == ("10.30.0.10", "recreate", None)
    assert db.privileges is not None and db.privileges.model_dump() == {"runtime": "runsc"}


async def _team_id(identities, name: str) -> str:
    async with identities.sessionmaker() as s:
        return (await s.execute(select(teams.c.id).where(teams.c.name == name))).scalar_one()


API_REFUSED: list[tuple[str, str]] = [
    (VOLUMES.replace("type: tmpfs", "type: ext4"), "/body/compose/volumes/cache/driver_opts/type"),
    (
        VOLUMES.replace("driver: local\n    driver_opts: {type: nfs", "driver: rexray\n    driver_opts: {type: nfs"),
        "/body/compose/volumes/share/driver",
    ),
    (
        "services:\n  a:\n    image: x\n    volumes: [sites:/s]\nvolumes:\n  sites:\n"
        "    driver_opts: {type: none, o: bind, device: /srv/sites}\n",
        "/body/compose/volumes/sites/driver_opts/device",
    ),
    (
        NETWORKS.replace("driver.mtu: 1400", "bridge.name: br0"),
        "/body/compose/networks/front/driver_opts/com.docker.network.bridge.name",
    ),
    (
        NETWORKS.replace("subnet: 10.30.0.0/24", "subnet: 8.8.0.0/16"),
        "/body/compose/networks/front/ipam/config/0/subnet",
    ),
    (NETWORKS.replace("    ipam:", "    x-ipam:"), "/body/compose/services/web/networks/front/ipv4_address"),
    ("services:\n  ml:\n    image: x\n    runtime: nvidia\n", "/body/compose/services/ml/runtime"),
]


@pytest.mark.parametrize(("text", "loc"), API_REFUSED, ids=[loc.rsplit("/", 2)[-2] for _, loc in API_REFUSED])
async def test_the_api_refuses_each_with_a_422_naming_the_key(client, members, text: str, loc: str) -> None:
    probe = {"name": "probe", "compose": {"inline": "services:\n  probe:\n    image: busybox\n"}}
    env_id = (await make_app(client, members.developer, probe))["environment_id"]
    r = await client.post(
        f"/v1/environments/{env_id}/applications",
        headers=members.developer,
        json={"name": "opts", "compose": {"inline": text}},
    )
    (err,) = problem(r, 422)["errors"]
    assert err["loc"] == loc, err


async def test_a_runtime_the_administrator_allows_one_team_is_that_teams_only(api, client, members, identities) -> None:
    text = "services:\n  ml:\n    image: x\n    runtime: nvidia\n"
    probe = {"name": "probe", "compose": {"inline": "services:\n  probe:\n    image: busybox\n"}}
    mine = (await make_app(client, members.developer, probe))["environment_id"]
    theirs = (await make_app(client, members.other, probe))["environment_id"]
    api.settings.compose_runtimes_teams[await _team_id(identities, "default")] = ["nvidia"]
    body: dict[str, Any] = {"name": "ml", "compose": {"inline": text}}
    r = await client.post(f"/v1/environments/{mine}/applications", headers=members.developer, json=body)
    assert r.status_code == 201, r.text
    (ml,) = r.json()["compose"]["translated"]["services"]
    assert ml["allowed"] == {"runtime": "nvidia"}
    r = await client.post(f"/v1/applications/{r.json()['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    assert r.json()["spec"]["services"][0]["privileges"] == {"runtime": "nvidia"}
    r = await client.post(f"/v1/environments/{theirs}/applications", headers=members.other, json=body)
    (err,) = problem(r, 422)["errors"]
    assert err["loc"] == "/body/compose/services/ml/runtime" and "BERTH_COMPOSE_RUNTIMES" in err["detail"]
