"""Two compose keys the catalogue sweeps found refused, translated exactly (each file normalised by the real
parser first): ``profiles`` (a service compose does not start is not deployed and is named in the notes; one
whose profiles include the empty one, Dify's weaviate, is; a service that needs one not started is refused
by name, as compose refuses it) and ``volumes_from`` (the other service's named volumes, host bind mounts and
files at the same paths, ``:ro`` read-only, ``container:`` refused by name); and both through the api."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from berth_api.adapters.compose_parser import ComposeParseError, normalise
from berth_api.domain.compose import ComposeRefusal, HostMap, Policy, precheck, profiles, translate
from tests.api.conftest import make_app
from tests.api.test_projects import problem

ALLOWED = "/srv/berth-vf"


def _translated(text: str, **kw: Any) -> dict[str, Any]:
    found = asyncio.run(normalise(text, {}))
    return translate(found.model, precheck(text), declared_profiles=profiles.declared(text), **kw)


def _refusal(text: str, **kw: Any) -> ComposeRefusal:
    with pytest.raises(ComposeRefusal) as caught:
        _translated(text, **kw)
    return caught.value


PROFILES = """
services:
  api:
    image: busybox
    depends_on:
      debug: {condition: service_started, required: false}
  weaviate:
    image: busybox
    profiles: ['', weaviate]
  debug:
    image: busybox
    profiles: [debug, tools]
"""


def test_a_service_compose_does_not_start_is_not_deployed_and_named_in_the_notes() -> None:
    got = _translated(PROFILES)
    assert [s["name"] for s in got["services"]] == ["api", "weaviate"]  # '' is compose's default profile
    assert "depends_on" not in got["services"][0]
    assert got["start_order"] == [["api", "weaviate"]]
    assert got["notes"] == [
        "services/debug: not deployed: it has profiles [debug, tools], none of them active (compose.profiles or "
        "the variable COMPOSE_PROFILES activates one)",
        "services/api/depends_on/debug: not carried: debug is not deployed (it has profiles; compose starts it "
        "only when asked) and the dependency is not required, so compose leaves it out too",
    ]


def test_a_host_for_a_service_that_is_not_deployed_is_refused_saying_why() -> None:
    err = _refusal(PROFILES, hosts=[HostMap("api", 80), HostMap("debug", 8080, "debug.example.com")])
    assert err.spot == "hosts/1/service"
    assert err.why.startswith("debug is not deployed: it has profiles [debug, tools], none of them active")
    assert _refusal(PROFILES, hosts=[HostMap("nope", 80)]).why == "the compose file has no service nope"


@pytest.mark.parametrize(
    ("need", "spot"),
    [
        ("depends_on: [debug]", "services/api/depends_on/debug"),
        ("depends_on: {debug: {condition: service_healthy}}", "services/api/depends_on/debug"),
        ("links: ['debug:dbg']", "services/api/links"),
        ("volumes_from: ['debug:ro']", "services/api/volumes_from"),
    ],
)
def test_a_service_that_needs_one_compose_does_not_start_is_refused_by_name(need: str, spot: str) -> None:
    text = f"services:\n  api:\n    image: busybox\n    {need}\n  debug:\n    image: busybox\n    profiles: [debug]\n"
    with pytest.raises(ComposeParseError) as caught:  # compose itself refuses the file without the profile
        asyncio.run(normalise(text, {}))
    refused = profiles.dependency_refusal(str(caught.value), text)
    assert refused is not None and refused.spot == spot
    assert refused.why.startswith("api needs debug, which is not deployed: it has profiles [debug]")
    other = 'service "api" depends on undefined service "nope": invalid compose project'
    assert profiles.dependency_refusal(other, text) is None  # not a service with profiles: the parser's words


VOLUMES_FROM = f"""
services:
  espocrm:
    image: busybox
    volumes:
      - data:/var/www/html/data
      - {ALLOWED}/cache:/cache:ro
      - ./files/app.conf:/etc/app.conf
      - custom:/var/www/html/custom
  daemon:
    image: busybox
    volumes_from: [espocrm]
    volumes: [spool:/var/www/html/custom]
  websocket:
    image: busybox
    volumes_from: ['espocrm:ro']
volumes:
  data: {{}}
  custom: {{}}
  spool: {{}}
"""
POLICY = Policy(bind_allow=(ALLOWED,), files=frozenset({"app.conf"}))
NOTE = (
    "carried as the named volumes, host bind mounts and files of espocrm at the same paths; not the volumes its "
    "image declares itself (VOLUME: each container has its own) nor its secrets"
)


def test_volumes_from_mounts_the_other_services_mounts_at_the_same_paths() -> None:
    got = _translated(VOLUMES_FROM, policy=POLICY)
    mounts = {s["name"]: (s.get("volumes"), s.get("binds"), s.get("files"), s.get("strategy")) for s in got["services"]}
    cache = {"host_path": f"{ALLOWED}/cache", "path": "/cache", "read_only": True}
    assert mounts == {
        "espocrm": (  # mounted by two services more: no single writer, so it rolls
            [{"name": "data", "path": "/var/www/html/data"}, {"name": "custom", "path": "/var/www/html/custom"}],
            [cache],
            [{"source": "app.conf", "target": "/etc/app.conf"}],
            None,
        ),
        "daemon": (  # its own mount at /var/www/html/custom wins, as in Docker
            [
                {"name": "spool", "path": "/var/www/html/custom", "single_writer": True},
                {"name": "data", "path": "/var/www/html/data"},
            ],
            [cache],
            [{"source": "app.conf", "target": "/etc/app.conf"}],
            "recreate",
        ),
        "websocket": (
            [
                {"name": "data", "path": "/var/www/html/data", "read_only": True},
                {"name": "custom", "path": "/var/www/html/custom", "read_only": True},
            ],
            [cache],
            [{"source": "app.conf", "target": "/etc/app.conf", "read_only": True}],
            None,
        ),
    }
    deps = {s["name"]: s.get("depends_on") for s in got["services"]}  # compose starts espocrm first
    assert deps["daemon"] == deps["websocket"] == [{"service": "espocrm", "condition": "service_started"}]
    assert [n for n in got["notes"] if "volumes_from" in n] == [
        f"services/daemon/volumes_from: {NOTE}",
        f"services/websocket/volumes_from: {NOTE}",
    ]


@pytest.mark.parametrize(
    ("entry", "spot", "why"),
    [
        ("'container:legacy'", "services/b/volumes_from/0", "volumes_from a container is not carried"),
        ("'a:z'", "services/b/volumes_from/0", "ro or rw, not z"),
        ("a, c", "services/b/volumes_from/1", "c and a both mount /data"),
    ],
)
def test_what_volumes_from_cannot_carry_is_refused_by_name(entry: str, spot: str, why: str) -> None:
    text = (
        "services:\n  a:\n    image: busybox\n    volumes: [one:/data]\n  c:\n    image: busybox\n"
        f"    volumes: [two:/data]\n  b:\n    image: busybox\n    volumes_from: [{entry}]\n"
        "volumes:\n  one: {}\n  two: {}\n"
    )
    err = _refusal(text)
    assert err.spot == spot and why in err.why


def _error(r) -> dict:
    (err,) = problem(r, 422)["errors"]
    return err


async def test_profiles_and_volumes_from_through_the_api(client, members) -> None:
    text = PROFILES + "  worker:\n    image: busybox\n    volumes_from: ['weaviate:ro']\n"
    text = text.replace("profiles: ['', weaviate]", "profiles: ['', weaviate]\n    volumes: [vectors:/data]")
    text += "volumes:\n  vectors: {}\n"
    app = await make_app(client, members.developer, {"name": "dify", "compose": {"inline": text}})
    assert [s["name"] for s in app["services"]] == ["api", "weaviate", "worker"]
    worker = app["services"][2]
    assert worker["volumes"] == [{"name": "vectors", "path": "/data", "read_only": True}]
    notes = app["compose"]["translated"]["notes"]
    assert notes[0] == (
        "services/debug: not deployed: it has profiles [debug, tools], none of them active (compose.profiles or "
        "the variable COMPOSE_PROFILES activates one)"
    )
    needs = "services:\n  api:\n    image: busybox\n    depends_on: [debug]\n  debug:\n    image: busybox\n    profiles: [debug]\n"
    r = await client.post(
        f"/v1/environments/{app['environment_id']}/applications",
        headers=members.developer,
        json={"name": "needs", "compose": {"inline": needs}},
    )
    err = _error(r)
    assert err["loc"] == "/body/compose/services/api/depends_on/debug"
    assert "which is not deployed: it has profiles [debug]" in err["detail"]
