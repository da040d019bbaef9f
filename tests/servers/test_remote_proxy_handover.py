"""A server's Traefik is replaced without a gap: a new Traefik version (another image) and then a new static
configuration, each under steady GETs and POSTs through the server's port 80, drop no request. The ports
stay published by the same holder all along; the Traefik that serves at the end runs the new image under the
usual name, and nothing of the replacement is left. A Traefik an earlier Berth made (publishing the ports
itself) is moved into the held namespace first (with a gap, once); an image that is not Traefik changes
nothing; with HTTPS (the holder made again for port 443) a replacement steers 443 as well. The calls are exact
data."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from berth_common import traefik as tr
from berth_proxy_sync.adapters.remote_files import RemoteDynamicDir
from berth_proxy_sync.domain import handover_programs as programs
from berth_proxy_sync.domain import proxy_handover as ph
from tests.servers.test_placement_e2e import _served
from tests.support.images import busybox_image
from tests.support.server_traefik import SERVER_ID, shop_server, under_load, write_routes

TAG = tr.default_image()  # the one tests.support.images.traefik_image makes
NEXT_TAG = "berth/traefik:handover-next"  # the same binary under another tag: a new Traefik version
BROKEN_TAG = "berth/traefik:handover-broken"  # not Traefik at all


def test_the_holder_the_traefiks_and_the_steering_are_exact_data() -> None:
    holder = ph.holder_create(TAG, 8080, websecure_port=8443)
    assert holder.path == "/v1.41/containers/create?name=berth-traefik-net"
    assert holder.body == {
        "Image": TAG,
        "Entrypoint": ["/berth-pause"],
        "Cmd": [],
        "Labels": {"berth.managed": "true", "berth.kind": "proxy-net"},
        "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
        "HostConfig": {
            "RestartPolicy": {"Name": "unless-stopped"},
            "PortBindings": {
                "80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                "443/tcp": [{"HostIp": "", "HostPort": "8443"}],
            },
            "Sysctls": {"net.ipv4.tcp_migrate_req": "1"},
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
        },
        "NetworkingConfig": {"EndpointsConfig": {"berth": {"Aliases": ["traefik"]}}},
    }
    created = ph.traefik_create(ph.NEXT, TAG, "/srv/t/s1", "0a1b")
    assert created.path == "/v1.41/containers/create?name=berth-traefik-next"
    assert created.body == {
        "Image": TAG,
        "Labels": {"berth.managed": "true", "berth.kind": "proxy"},
        "Env": ["BERTH_TRAEFIK_INSTANCE=0a1b"],
        "HostConfig": {
            "RestartPolicy": {"Name": "unless-stopped"},
            "Binds": ["/srv/t/s1/traefik.yml:/etc/traefik/traefik.yml:ro", "/srv/t/s1/dynamic:/etc/traefik/dynamic:ro"],
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
            "NetworkMode": "container:berth-traefik-net",
        },
    }
    with pytest.raises(ValueError):
        ph.traefik_create(ph.NEXT, TAG, "/srv/t/s1", "a b")
    # each Traefik names itself in its API (both answer at one address during a replacement)
    assert json.loads(ph.instance_config()) == {
        "http": {
            "middlewares": {
                "berth-instance-{{ env `BERTH_TRAEFIK_INSTANCE` }}": {"stripPrefix": {"prefixes": ["/berth-instance"]}}
            }
        }
    }
    raw = {"routers": {"shop@file": {}}, "middlewares": {"berth-instance-0a1b@file": {}}}
    assert ph.answered_by(raw, "0a1b") and not ph.answered_by(raw, "0a1c") and ph.router_names(raw) == {"shop@file"}
    assert ph.steer_create(TAG).body == {
        "Image": TAG,
        "Entrypoint": ["/berth-steer"],
        "Cmd": [],
        "Labels": {"berth.managed": "true", "berth.kind": "proxy-steer"},
        "HostConfig": {"NetworkMode": "container:berth-traefik-net"},
    }
    assert ph.steer_ports(False, programs.OLDEST) == [(80, 0), (8081, 1)]
    assert ph.steer_ports(True, programs.NEWEST) == [(80, 1), (443, 1), (8081, 1)]
    assert ph.upload("berth-traefik-steer").path == "/v1.41/containers/berth-traefik-steer/archive?path=%2F"
    assert ph.container_stop("berth-traefik").path == "/v1.41/containers/berth-traefik/stop?t=15"
    assert ph.container_rename(ph.NEXT, "berth-traefik").path == (
        "/v1.41/containers/berth-traefik-next/rename?name=berth-traefik"
    )
    with tarfile.open(fileobj=io.BytesIO(ph.program_tar("/berth-pause", programs.pause()))) as tar:
        [member] = tar.getmembers()
        assert (member.name, member.mode) == ("berth-pause", 0o755)
    # the pause program: an ELF header, one loaded segment, then `mov eax, 34; syscall; jmp back`
    pause = programs.pause()
    assert pause[:4] == b"\x7fELF" and len(pause) == 120 + 9
    assert pause[120:] == bytes.fromhex("b822000000 0f05 ebf7")
    with pytest.raises(ValueError):
        programs.steer([(80, 2)])
    # a Traefik that publishes the ports itself is an earlier Berth's; one in another namespace serves nothing
    assert ph.legacy({"HostConfig": {"NetworkMode": "berth", "PortBindings": {}}})
    assert not ph.legacy({"HostConfig": {"NetworkMode": "container:abc"}})
    holder = {"Id": "abc", "State": {"StartedAt": "2026-12-06T20:00:00.123456789Z"}}
    body = ph.traefik_body(TAG, "/srv/t/s1")
    info = {
        "Config": {"Image": TAG, "Env": []},
        "HostConfig": {**body["HostConfig"], "NetworkMode": "container:abc"},
        "State": {"StartedAt": "2026-12-06T20:00:01.5Z"},
    }
    assert ph.traefik_problem(info, holder, TAG, "/srv/t/s1") is None
    assert ph.traefik_problem(info, holder, NEXT_TAG, "/srv/t/s1") == f"runs image {TAG!r}, not {NEXT_TAG!r}"
    early = {**info, "State": {"StartedAt": "2026-12-06T19:59:59Z"}}
    assert (ph.traefik_problem(early, holder, TAG, "/srv/t/s1") or "").startswith(ph.NAMESPACE_GONE)


@pytest.mark.slow
async def test_a_server_traefik_is_replaced_under_load_without_an_error(tmp_path: Path) -> None:
    async with shop_server(tmp_path) as shop:
        server, conn, root = shop.server, shop.conn, shop.root
        server.docker("tag", TAG, NEXT_TAG)

        # the Traefik an earlier Berth made: it publishes the ports itself
        folder = RemoteDynamicDir(conn, f"{root}/srv")
        await RemoteDynamicDir(conn, f"{root}/srv/dynamic").ensure()
        await folder.write("traefik.yml", tr.server_static_config())
        await write_routes(RemoteDynamicDir(conn, f"{root}/srv/dynamic"))
        name, body = tr.server_container(TAG, "berth", f"{root}/srv")
        await shop.engines.client(SERVER_ID).containers.run(body, name=name)
        await _served(server.address, "v1")
        # the first switch to a held namespace leaves a gap (the ports must be free for the holder), once
        await shop.ensure(TAG, ready_timeout_s=5)
        await _served(server.address, "v1")
        mode = server.docker("inspect", "-f", "{{.HostConfig.NetworkMode}}", "berth-traefik").strip()
        assert mode == "container:" + shop.state(ph.HOLDER).split()[0], mode
        holder = shop.state(ph.HOLDER)
        first = shop.state("berth-traefik")
        assert first.endswith(f"{TAG} true"), first

        async def replacements() -> str:
            await shop.ensure(NEXT_TAG, ready_timeout_s=5)  # a new Traefik version
            second = shop.state("berth-traefik")
            assert second.endswith(f"{NEXT_TAG} true") and second.split()[0] != first.split()[0], second
            # a new static configuration (as an upgrade of Berth brings): the file differs, Traefik is replaced
            async with conn.start_sftp_client() as sftp:
                async with sftp.open(f"{root}/srv/traefik.yml", "w") as fh:
                    await fh.write(tr.server_static_config() + "\n")
            await shop.ensure(NEXT_TAG, ready_timeout_s=5)
            third = shop.state("berth-traefik")
            assert third.endswith(f"{NEXT_TAG} true") and third.split()[0] != second.split()[0], third
            # a new image that cannot serve: it is removed, the running Traefik keeps every connection (it never
            # serves, so its 2 s to do so are waited out)
            server.docker("tag", busybox_image(), BROKEN_TAG)
            await shop.ensure(BROKEN_TAG, ready_timeout_s=2)
            assert shop.state("berth-traefik") == third
            return third

        # GETs and POSTs, a connection per request and kept-alive connections, as browsers keep them
        third = await under_load(server.address, replacements(), requests=200, kept_seconds=20)
        assert shop.state(ph.HOLDER) == holder  # the ports were published by the same holder all along
        names = server.docker("ps", "-a", "--format", "{{.Names}}").split()
        assert sorted(names) == ["berth-traefik", "berth-traefik-net", "shop-web-1"], names
        await shop.ensure(NEXT_TAG, ready_timeout_s=5)  # nothing to change: nothing replaced
        assert shop.state("berth-traefik") == third
        # a websecure port known only now: this holder publishes port 80 only, so it is made again (a gap,
        # once; test_remote_https_on.py turns HTTPS on with the port published from the start); then a
        # replacement steers port 443 too
        await shop.ensure(NEXT_TAG, websecure_port=443, ready_timeout_s=5)
        assert shop.state(ph.HOLDER) != holder and "443/tcp" in server.docker("port", ph.HOLDER)
        https = shop.state("berth-traefik")
        await _served(server.address, "v1")
        await shop.ensure(TAG, websecure_port=443, ready_timeout_s=5)
        assert shop.state("berth-traefik").split()[0] != https.split()[0]
        await _served(server.address, "v1")
