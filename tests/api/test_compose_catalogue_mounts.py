"""Mounts and keys the catalogues' files use, translated exactly (each file normalised by the real parser
first): a mount's SELinux label (``:z`` / ``:Z``: Supabase's storage volume and kong's files) is noted on a
named volume or the application's files and refused on a host path; ``deploy.mode: replicated``
(erpnext, frappe) is the default it names, ``global`` refused by name; the server's ``/etc/localtime``,
``/etc/timezone`` and ``/dev/urandom`` at their own paths are left out and noted unless the administrator
allows them (then mounted), and at another path refused; ``deploy.replicas: 0`` is refused, not run once."""

from __future__ import annotations

from berth_api.domain.compose import Policy
from tests.api.test_compose_translate import _refusal, _translated

KONG = "services:\n  kong:\n    image: kong:3\n    volumes:\n      - ./files/kong.yml:/home/kong/temp.yml:ro,z\n"
STORAGE = """
services:
  storage:
    image: supabase/storage-api:v1
    volumes:
      - files-volumes-storage:/var/lib/storage:z
volumes:
  files-volumes-storage:
"""
LABEL_NOTE = "not carried: Docker labels the volumes and files Berth makes"


def test_an_applications_file_notes_its_label() -> None:
    got = _translated(KONG, policy=Policy(files=frozenset({"kong.yml"})))
    (kong,) = got["services"]
    assert kong["files"] == [{"source": "kong.yml", "target": "/home/kong/temp.yml", "read_only": True}]
    assert got["notes"] == [
        f"services/kong/volumes/0/bind/selinux: {LABEL_NOTE}",
        "services/kong/volumes/0/read_only: the files are bind-mounted read-only into the service's containers "
        "(root there cannot change them either)",
    ]


def test_a_named_volume_notes_its_label() -> None:
    got = _translated(STORAGE)
    (storage,) = got["services"]
    assert storage["volumes"] == [{"name": "files-volumes-storage", "path": "/var/lib/storage", "single_writer": True}]
    assert got["notes"] == [f"services/storage/volumes/0/bind/selinux: {LABEL_NOTE}"]


def test_a_host_paths_label_is_refused_by_name() -> None:
    host = KONG.replace("./files/kong.yml", "/srv/kong.yml")
    refused = _refusal(host, policy=Policy(bind_allow=("/srv",)))
    assert (refused.spot, refused.why) == (
        "services/kong/volumes/0/bind",
        "Berth does not carry this compose key; remove it",
    )
    allowed = _translated(host.replace(":ro,z", ":ro"), policy=Policy(bind_allow=("/srv",)))
    assert allowed["services"][0]["binds"] == [
        {"host_path": "/srv/kong.yml", "path": "/home/kong/temp.yml", "read_only": True}
    ]


def test_deploy_mode_replicated_is_the_replicas_and_global_is_refused() -> None:
    text = "services:\n  db:\n    image: mariadb:10.6\n    deploy:\n      mode: replicated\n      replicas: 2\n"
    got = _translated(text)
    (db,) = got["services"]
    assert db["replicas"] == 2
    assert got["notes"] == []
    refused = _refusal(text.replace("replicated", "global").replace("      replicas: 2\n", ""))
    assert (refused.spot, refused.why) == (
        "services/db/deploy/mode",
        "Berth does not carry this compose key (global: Berth runs deploy.replicas on the application's servers); "
        "remove it",
    )


STAND_INS = """
services:
  immich:
    image: ghcr.io/immich-app/immich-server:v1
    volumes:
      - /etc/localtime:/etc/localtime:ro
      - /etc/timezone:/etc/timezone
      - /dev/urandom:/dev/urandom
      - /dev/urandom:/dev/random:ro
"""


def test_the_servers_time_zone_and_urandom_are_left_out_and_noted() -> None:
    got = _translated(STAND_INS)
    (immich,) = got["services"]
    assert "binds" not in immich
    zone = "the container keeps its image's time zone (UTC in most; many images read the variable TZ)"
    assert got["notes"] == [
        f"services/immich/volumes/0: not carried: /etc/localtime of the server is not mounted; {zone}",
        f"services/immich/volumes/1: not carried: /etc/timezone of the server is not mounted; {zone}",
        "services/immich/volumes/2: not carried: /dev/urandom of the server is not mounted; the container has its "
        "own, the same kernel device",
        "services/immich/volumes/3: not carried: /dev/urandom of the server is not mounted; the container has its "
        "own /dev/random, which on Linux 5.6 and later never blocks, as /dev/urandom",
    ]


def test_an_allowed_stand_in_is_mounted_and_one_at_another_path_is_refused() -> None:
    got = _translated(STAND_INS, policy=Policy(bind_allow=("/etc", "/dev/urandom")))
    assert got["services"][0]["binds"] == [
        {"host_path": "/etc/localtime", "path": "/etc/localtime", "read_only": True},
        {"host_path": "/etc/timezone", "path": "/etc/timezone", "read_only": False},
        {"host_path": "/dev/urandom", "path": "/dev/urandom", "read_only": False},
        {"host_path": "/dev/urandom", "path": "/dev/random", "read_only": True},
    ]
    assert got["notes"] == []
    refused = _refusal(STAND_INS.replace("/etc/timezone:/etc/timezone", "/etc/timezone:/config/tz"))
    assert (refused.spot, refused.why) == (
        "services/immich/volumes/1/source",
        "host bind mounts are allowed only under the paths the administrator lists (none for this team: "
        "BERTH_BIND_MOUNT_ALLOW_TEAMS, BERTH_BIND_MOUNT_ALLOW)",
    )


def test_no_replicas_is_refused_rather_than_run_once() -> None:
    # erpnext's ``replicas: ${ENABLE_DB:-0}``: compose starts no database when the variable is 0
    text = "services:\n  db:\n    image: mariadb:10.6\n    deploy:\n      replicas: ${ENABLE_DB:-0}\n"
    refused = _refusal(text)
    assert (refused.spot, refused.why) == (
        "services/db/deploy/replicas",
        "at least 1: leave the service out with profiles",
    )
    assert _translated(text, {"ENABLE_DB": "1"})["services"][0]["replicas"] == 1
