"""A compose service's read-only root filesystem, reservations, one volume at two paths and secret files: the
exact create bodies (a single engine's and a Swarm service's), where its files come from, and the real engine
running them: writing to ``/`` fails while the service's mounts and files are there, both paths of one volume
show the same file, and a secret file holds its value, read-only, at its target with its mode."""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import replace
from typing import Any

import pytest
from pydantic import ValidationError

from berth_api.adapters.compose_parser import normalise
from berth_api.domain.compose import precheck, translate
from berth_api.usecases.compose_snapshot import compose_spec
from berth_common import sealing
from berth_common.catalogue import ApplicationSpec
from berth_scheduler.adapters.docker import DockerExecutor
from berth_scheduler.domain import app_files, swarm, swarm_files
from berth_scheduler.domain.containers import container_spec
from berth_scheduler.usecases.read_only_files import with_read_only_files
from tests.scheduler.conftest import remove_labelled
from tests.scheduler.test_app_files import _cleanup, _ran

APP = "app-1"
DEP = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
SECRET = "s3cr3t 'pw' \"x\""
MIB = 1024 * 1024


def _spec(image: str = "x:1", **service: Any) -> ApplicationSpec:
    return ApplicationSpec.model_validate(
        {
            "name": "shop",
            "source": {"kind": "image", "image": image},
            "restart_policy": "no",  # a replica here runs its script once
            "services": [{"kind": "worker", "name": "db", **service}],
            "files": [{"path": "conf/app.conf", "content": "mode = safe\n"}],
        }
    )


RUNTIME = {"read_only_rootfs": True, "reservations": {"cpus": 0.25, "memory_mb": 128}}


def test_a_read_only_root_and_reservations_are_exact_in_the_create_body():
    spec = _spec(host_limits=RUNTIME, limits={"memory_mb": 512})
    cs = container_spec(APP, DEP, spec, spec.services[0], 1, "x:1")
    hc = cs.body["HostConfig"]
    assert (hc["ReadonlyRootfs"], hc["MemoryReservation"], hc["Memory"]) == (True, 128 * MIB, 512 * MIB)
    assert "NanoCpus" not in hc and "CpuShares" not in hc  # a CPU reservation is no limit on one engine
    assert cs.reserved_nano_cpus == 250_000_000
    plain = container_spec(APP, DEP, _spec(), _spec().services[0], 1, "x:1")
    assert not {"ReadonlyRootfs", "MemoryReservation"} & set(plain.body["HostConfig"])
    assert plain.reserved_nano_cpus is None


def test_a_swarm_service_reserves_what_compose_reserves_and_keeps_its_root_read_only():
    spec = _spec(host_limits=RUNTIME, limits={"cpus": 1, "memory_mb": 512})
    cs = container_spec(APP, DEP, spec, spec.services[0], 1, "x:1")
    task = swarm.service_body(cs, 2, "berth-overlay").body["TaskTemplate"]
    assert task["Resources"] == {
        "Limits": {"NanoCPUs": 1_000_000_000, "MemoryBytes": 512 * MIB},
        "Reservations": {"NanoCPUs": 250_000_000, "MemoryBytes": 128 * MIB},
    }
    assert task["ContainerSpec"]["ReadOnly"] is True
    plain = container_spec(APP, DEP, _spec(), _spec().services[0], 1, "x:1")
    task = swarm.service_body(plain, 2, "berth-overlay").body["TaskTemplate"]
    assert task["Resources"] == {"Limits": {}} and "ReadOnly" not in task["ContainerSpec"]


def test_one_volume_at_two_paths_is_two_mounts_of_one_docker_volume():
    spec = _spec(
        volumes=[{"name": "data", "path": "/a", "single_writer": True}, {"name": "data", "path": "/b"}],
        strategy="recreate",
    )
    mounts = container_spec(APP, DEP, spec, spec.services[0], 1, "x:1").body["HostConfig"]["Mounts"]
    assert mounts == [
        {"Type": "volume", "Source": "berth-app-1-data", "Target": "/a", "ReadOnly": False},
        {"Type": "volume", "Source": "berth-app-1-data", "Target": "/b", "ReadOnly": False},
    ]
    old = {"name": "data", "path": "/a"}  # a snapshot of before: one mount per volume, as it was
    assert _spec(volumes=[old]).services[0].volumes[0].path == "/a"
    with pytest.raises(ValidationError, match="share a path"):
        _spec(volumes=[old, {"name": "other", "path": "/a"}])


SECRETS = [
    {"target": "/run/secrets/db_password", "mode": 0o400, "value": SECRET},
    {"target": "/etc/app/key", "value": "k3y"},
]


def test_secret_files_and_a_read_only_roots_files_come_from_the_read_only_files_volume():
    files = [{"source": "conf/app.conf", "target": "/etc/app/app.conf"}]
    spec = _spec(files=files, secret_files=SECRETS, host_limits={"read_only_rootfs": True})
    svc = spec.services[0]
    assert app_files.archive(spec, svc, read_only=False) is None  # nothing goes into a read-only layer
    found = [(p, f.mode, f.reveal()) for p, f in app_files.placed(spec, svc)]
    assert found == [
        ("/etc/app/app.conf", 0o644, "mode = safe\n"),
        ("/run/secrets/db_password", 0o400, SECRET),
        ("/etc/app/key", 0o444, "k3y"),
    ]
    volume = app_files.read_only_volume(APP, spec, svc)
    assert volume is not None
    assert [m["Target"] for m in app_files.read_only_mounts(spec, svc, volume, "/v")] == [
        "/etc/app/app.conf",
        "/run/secrets/db_password",
        "/etc/app/key",
        "/.berth-files",
    ]
    other = _spec(files=files, secret_files=[{**SECRETS[0], "value": "another"}, SECRETS[1]])
    assert app_files.digest(other, other.services[0]) != app_files.digest(spec, svc)  # a new value: new container
    writable = _spec(files=files)  # without read_only, its file goes into its own layer
    assert app_files.archive(writable, writable.services[0], read_only=False) is not None
    assert app_files.servers_with_files([_spec(secret_files=SECRETS).model_dump(mode="json")]) == ["local"]
    on_swarm = [s.target for s in swarm_files.file_secrets("app1", "team-1", spec, svc)]
    assert on_swarm == ["/etc/app/app.conf", "/run/secrets/db_password", "/etc/app/key"]


def test_a_secret_file_is_sealed_on_the_wire_and_counted_among_the_secrets_to_redact():
    spec = _spec(secret_files=SECRETS)
    text = json.dumps(spec.model_dump(mode="json"))
    assert SECRET not in text and "k3y" not in text and "**********" in str(spec.services[0].secret_files[0])
    sent = json.loads(text)["services"][0]["secret_files"][0]
    assert sealing.unseal(sent["value"], "berth/secret-file//run/secrets/db_password") == SECRET
    again = ApplicationSpec.model_validate_json(text)
    assert again.services[0].secret_files[0].reveal() == SECRET
    assert {SECRET, "k3y"} <= set(again.secret_values())
    with pytest.raises(ValidationError, match="share a target"):
        _spec(secret_files=[SECRETS[0], {**SECRETS[1], "target": SECRETS[0]["target"]}])


async def _started(docker: DockerExecutor, app: str, spec: ApplicationSpec, cmd: list[str]) -> tuple[str, str]:
    """Run the service's replica to its end as the rollout makes it (its read-only files bound from their
    volume, the others put into its layer): its name and output."""
    svc = spec.services[0]
    cs = container_spec(app, uuid.uuid4().hex[:8], spec, svc, 1, spec.source.image)  # type: ignore[union-attr]
    cs = await with_read_only_files(docker, app, None, spec, svc, cs)
    cs = replace(cs, body={**cs.body, "Cmd": cmd})
    await docker.create(cs)
    files = app_files.archive(spec, svc, read_only=False)
    if files is not None:
        await docker.put_archive(cs.name, "/", files)
    return cs.name, await _ran(docker, cs.name)


@pytest.mark.docker
async def test_a_read_only_root_refuses_writes_while_its_mounts_and_files_work(docker: DockerExecutor, busybox):
    app = f"test-ro-{uuid.uuid4().hex[:8]}"
    spec = _spec(
        busybox,
        host_limits={"read_only_rootfs": True, "tmpfs": {"/tmp": ""}},
        volumes=[{"name": "data", "path": "/data", "single_writer": True}],
        strategy="recreate",
        files=[{"source": "conf/app.conf", "target": "/etc/app/app.conf"}],
    )
    script = (
        "touch /x 2>/dev/null && echo root-written || echo root-refused; "
        "echo v > /data/f && echo volume-written; echo t > /tmp/f && echo tmpfs-written; cat /etc/app/app.conf"
    )
    try:
        _, out = await _started(docker, app, spec, ["sh", "-c", script])
        assert out.split("\n")[:4] == ["root-refused", "volume-written", "tmpfs-written", "mode = safe"], out
        writable = _spec(busybox, files=[{"source": "conf/app.conf", "target": "/etc/app/app.conf"}])
        _, out = await _started(docker, app, writable, ["sh", "-c", script.split(";")[0]])
        assert out.strip() == "root-written"  # the same image without read_only: the key made the difference
    finally:
        _cleanup(app)
        subprocess.run(["docker", "volume", "rm", "-f", f"berth-{app}-data"], capture_output=True, check=False)


@pytest.mark.docker
async def test_one_volume_at_two_paths_shows_the_same_file_at_both(docker: DockerExecutor, busybox):
    app = f"test-2p-{uuid.uuid4().hex[:8]}"
    spec = _spec(busybox, volumes=[{"name": "data", "path": "/a"}, {"name": "data", "path": "/b"}])
    try:
        _, out = await _started(docker, app, spec, ["sh", "-c", "echo same > /a/f && cat /b/f"])
        assert out.strip() == "same"
    finally:
        _cleanup(app)
        subprocess.run(["docker", "volume", "rm", "-f", f"berth-{app}-data"], capture_output=True, check=False)


@pytest.mark.docker
async def test_a_secret_file_holds_its_value_read_only_at_its_target(docker: DockerExecutor, busybox):
    app = f"test-sf-{uuid.uuid4().hex[:8]}"
    spec = _spec(busybox, secret_files=SECRETS)
    script = (
        "cat /run/secrets/db_password; echo; cat /etc/app/key; echo; stat -c %a /run/secrets/db_password; "
        "(echo x > /run/secrets/db_password) 2>/dev/null && echo changed || echo kept"
    )
    try:
        name, out = await _started(docker, app, spec, ["sh", "-c", script])
        assert out.split("\n")[:4] == [SECRET, "k3y", "400", "kept"], out  # root cannot change it either
        assert SECRET not in json.dumps(await docker.inspect(name))  # its configuration names the file only
    finally:
        _cleanup(app)


async def test_a_compose_files_keys_reach_the_create_body_through_the_snapshot():
    """The api's translation and snapshot, then the scheduler's body: read_only, the reservations, one volume
    at two paths, a secret of the application's variable and an internal network, exactly."""
    text = (
        "services:\n  db:\n    image: berth/db:1\n    read_only: true\n    volumes: [data:/a, data:/b]\n"
        "    deploy: {resources: {reservations: {cpus: '0.5', memory: 64m}}}\n    secrets: [{source: pw, mode: 0400}]\n"
        "    networks: [back]\n"
        "volumes:\n  data: {}\nsecrets:\n  pw: {environment: DB_PASSWORD}\nnetworks:\n  back: {internal: true}\n"
    )
    found = await normalise(text, {})
    result = translate(found.model, precheck(text))
    core = [
        {k: s[k] for k in ("kind", "name", "command", "health_command", "volumes", "strategy")}
        for s in result["services"]
    ]
    spec = ApplicationSpec.model_validate(
        {
            "name": "rt",
            "source": {"kind": "image", "image": "berth/db:1"},
            "services": core,
            "env": [{"name": "DB_PASSWORD", "value": SECRET, "secret": True}],
        }
    )
    spec = compose_spec(spec, {"compose": {"inline": text}, "compose_translated": result}, files=[])
    svc = spec.services[0]
    cs = container_spec(APP, DEP, spec, svc, 1, "berth/db:1")
    hc = cs.body["HostConfig"]
    assert {k: hc[k] for k in ("ReadonlyRootfs", "MemoryReservation", "Mounts")} == {
        "ReadonlyRootfs": True,
        "MemoryReservation": 64 * MIB,
        "Mounts": [
            {"Type": "volume", "Source": "berth-app-1-data", "Target": "/a", "ReadOnly": False},
            {"Type": "volume", "Source": "berth-app-1-data", "Target": "/b", "ReadOnly": False},
        ],
    }
    assert cs.reserved_nano_cpus == 500_000_000
    assert cs.body["NetworkingConfig"] == {"EndpointsConfig": {"berth-app-app-1-internal": {"Aliases": ["db"]}}}
    assert cs.connects == ()
    assert [(p, f.mode, f.reveal()) for p, f in app_files.placed(spec, svc)] == [("/run/secrets/pw", 0o400, SECRET)]
    assert SECRET not in json.dumps(cs.body)


def _networked(image: str = "x:1") -> ApplicationSpec:
    serve = ["sh", "-c", "mkdir -p /www && echo $0 > /www/index.html && exec httpd -f -p 8080 -h /www", "{name}"]
    services = [
        {"kind": "web", "name": "web", "port": 8080, "health_path": "/", "command": [*serve[:3], "web"]},
        {"kind": "worker", "name": "api", "internal_network": "also", "command": [*serve[:3], "api"]},
        {"kind": "worker", "name": "db", "internal_network": "only", "command": [*serve[:3], "db"]},
    ]
    return ApplicationSpec.model_validate(
        {
            "name": "nets",
            "source": {"kind": "image", "image": image},
            "private_network": True,
            "restart_policy": "no",
            "network": "berth-team-databases",
            "services": services,
        }
    )


def test_a_service_on_the_internal_network_only_joins_no_other_network():
    spec = _networked()
    web, api, db = (
        container_spec(APP, DEP, spec, s, 1, "x:1", 40000 if s.kind == "web" else None) for s in spec.services
    )
    first = {cs.service: cs.body["NetworkingConfig"]["EndpointsConfig"] for cs in (web, api, db)}
    assert first == {
        "web": {"berth-app-app-1": {"Aliases": ["web"]}},
        "api": {"berth-app-app-1": {"Aliases": ["api"]}},
        "db": {"berth-app-app-1-internal": {"Aliases": ["db"]}},
    }
    assert web.connects == (("berth-team-databases", ("web.nets",)),)
    assert api.connects == (("berth-app-app-1-internal", ("api",)), ("berth-team-databases", ("api.nets",)))
    assert db.connects == ()
    remote = container_spec(APP, DEP, spec, spec.services[2], 1, "x:1", server_id="srv-2")
    assert remote.body["NetworkingConfig"] == db.body["NetworkingConfig"] and remote.connects == ()  # no Berth network
    data = spec.model_dump(mode="json")
    data["services"][0]["internal_network"] = "only"
    with pytest.raises(ValidationError, match="internal network only"):
        ApplicationSpec.model_validate(data)


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False).stdout.strip()


def _exec(name: str, script: str) -> str:
    return _run(["docker", "exec", name, "sh", "-c", script])


@pytest.mark.docker
async def test_a_service_on_the_internal_network_only_is_cut_off_from_everything_but_that_network(
    docker: DockerExecutor, busybox, app_id
):
    """``db`` sits on the internal network only, ``api`` on both, ``web`` on the private network only: nothing
    is forwarded out of ``db``'s network (another network's address, as the internet's would be), ``web`` (the
    proxy's side) reaches neither its name nor its address, and ``api`` reaches both sides."""
    spec = _networked(busybox)
    own = {"berth.managed": "true", "berth.app": app_id}
    await docker.ensure_network(f"berth-app-{app_id}", own)
    await docker.ensure_network(f"berth-app-{app_id}-internal", own, internal=True)
    made = []
    try:
        for svc in spec.services:
            cs = container_spec(app_id, uuid.uuid4().hex[:8], spec, svc, 1, busybox, 1 if svc.kind == "web" else None)
            host = {k: v for k, v in cs.body["HostConfig"].items() if k != "PortBindings"}  # reached by name here
            body = {**cs.body, "HostConfig": host}
            # the application's networks (the team's databases' network is another part's)
            cs = replace(cs, connects=tuple(c for c in cs.connects if c[0].startswith("berth-app-")), body=body)
            await docker.create(cs)
            for network, aliases in cs.connects:
                await docker.connect_network(
                    network, {"Container": cs.name, "EndpointConfig": {"Aliases": list(aliases)}}
                )
            await docker.start(cs.name)
            made.append(cs.name)
        web, api, db = made
        info = await docker.inspect(db)
        assert list(info["NetworkSettings"]["Networks"]) == [f"berth-app-{app_id}-internal"]
        db_ip = info["NetworkSettings"]["Networks"][f"berth-app-{app_id}-internal"]["IPAddress"]
        # busybox's wget crashes in these containers: nc asks, and the last line is the page (the server's name)
        fetch = (
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {} 8080 2>/dev/null | tail -n 1 | grep . || echo unreached"
        )
        up = "echo | nc -w 1 {} 8080 >/dev/null 2>&1"
        wait = f"i=0; until {up.format('web')} && {up.format('db')}; do i=$((i+1)); [ $i -gt 50 ] && break; sleep 0.2; done"
        _exec(api, wait)  # both servers answer (api reaches both sides)
        web_ip = (await docker.inspect(web))["NetworkSettings"]["Networks"][f"berth-app-{app_id}"]["IPAddress"]
        # to another network's address: forwarded by the server, as a packet to the internet would be; the
        # engine forwards nothing out of an internal network (Docker's Internal: no NAT, no way out at all)
        inspect = ["docker", "network", "inspect", "-f", "{{.Internal}}"]
        assert [_run([*inspect, f"berth-app-{app_id}{end}"]) for end in ("-internal", "")] == ["true", "false"]
        assert (_exec(db, fetch.format(web_ip)), _exec(api, fetch.format(web_ip))) == ("unreached", "web")
        assert (_exec(db, fetch.format("api")), _exec(db, fetch.format("web"))) == ("api", "unreached")
        assert (_exec(web, fetch.format("db")), _exec(web, fetch.format(db_ip))) == ("unreached", "unreached")
        assert (_exec(api, fetch.format("db")), _exec(api, fetch.format("web"))) == ("db", "web")
    finally:
        remove_labelled(f"berth.app={app_id}")
        subprocess.run(["docker", "network", "rm", f"berth-app-{app_id}-internal"], capture_output=True, check=False)
