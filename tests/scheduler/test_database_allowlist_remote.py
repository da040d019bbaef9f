"""The public allow-list of a database on another server: the scheduler makes the database and its TCP
proxy on a namespace server (``tests.support.testservers``: its own dockerd, reached over SSH through the
connection factory), the images streamed to it from the control plane's engine (no registry); two more
namespaces on the same network are its clients. From the admitted one the database answers through the
proxy on the server's address; from the other the connection is closed before a byte reaches it. The
database itself publishes nothing there. Admitting everyone again removes the proxy from that server and the
database publishes the port itself (both clients answered); removing it removes its container there.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from typing import Any

import pytest

from berth_common.catalogue import RemoveDatabase, RunDatabase
from berth_scheduler.domain import database_proxy as proxy
from berth_scheduler.domain import databases as dom
from tests.scheduler.test_database_allowlist import proxy_image, redis_from, rig  # noqa: F401  (fixtures)
from tests.scheduler.test_databases import Made, Rig, rid, spec_of
from tests.support import images
from tests.support.testservers import make_net, remove_net, server_changed, start_server, stop_server

pytestmark = [pytest.mark.docker, pytest.mark.slow]
PORT = 15433
ANSWERED = repr(b"+OK\r\n+PONG\r\n")


def _remote_inspect(docker_host: str, name: str) -> dict[str, Any] | None:
    argv = [images.DOCKER, "-H", docker_host, "inspect", name]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    return json.loads(proc.stdout)[0] if proc.returncode == 0 else None


async def test_a_remote_database_s_proxy_admits_only_the_listed_address(rig: Rig, proxy_image: str) -> None:  # noqa: F811
    images.redis_image()
    made, server_id, password = Made(), uuid.uuid4().hex, "pw-" + uuid.uuid4().hex
    net = make_net()
    servers = []
    try:
        edge = start_server(net, 2)
        servers.append(edge)
        admitted = start_server(net, 3, with_sshd=False, with_docker=False)
        servers.append(admitted)
        refused = start_server(net, 4, with_sshd=False, with_docker=False)
        servers.append(refused)
        await rig.api.publish(server_changed(edge, server_id, team_id=made.team_id, name="edge"))
        public = {"port": PORT, "allow": [f"{admitted.address}/32"]}
        spec = spec_of(made, "redis", "7", password, server_id=server_id, public=public)
        for _ in range(20):  # the server's announcement and the command travel on different consumers
            answer = await rig.wait(await rig.send(RunDatabase(request_id=rid(), spec=spec)), timeout=600)
            if "not known to the scheduler" not in answer["reason"]:
                break
            await asyncio.sleep(0.5)
        assert answer["state"] == "running", answer
        assert answer["port"] == PORT and answer["reason"] == dom.THROUGH_PROXY

        database = _remote_inspect(edge.docker_host, made.container)
        assert database is not None and not database["HostConfig"].get("PortBindings")
        made_proxy = _remote_inspect(edge.docker_host, proxy.name(made.database_id))
        assert made_proxy is not None and made_proxy["State"]["Running"]
        assert made_proxy["Config"]["Image"] == proxy_image  # streamed from the control plane's engine
        local = subprocess.run([images.DOCKER, "inspect", made.container], capture_output=True, check=False)
        assert local.returncode != 0  # on the server, not on the control plane

        got = ""
        for _ in range(50):  # the proxy applies its file moments after it starts listening
            got = redis_from(admitted.name, edge.address, PORT, password)
            if got == ANSWERED:
                break
            time.sleep(0.2)
        assert got == ANSWERED
        assert redis_from(refused.name, edge.address, PORT, password) in (repr(b""), "reset")

        # admitting everyone removes the proxy there; the database publishes the port itself and answers all
        everyone = spec.model_copy(update={"public": spec.public.model_copy(update={"allow": ["0.0.0.0/0"]})})
        answer = await rig.wait(await rig.send(RunDatabase(request_id=rid(), spec=everyone)), timeout=300)
        assert answer["state"] == "running" and answer["port"] == PORT and answer["reason"] == "", answer
        assert _remote_inspect(edge.docker_host, proxy.name(made.database_id)) is None
        database = _remote_inspect(edge.docker_host, made.container)
        assert database is not None
        bindings = database["HostConfig"]["PortBindings"]
        assert bindings == {"6379/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(PORT)}]}
        assert redis_from(refused.name, edge.address, PORT, password) == ANSWERED
        assert redis_from(admitted.name, edge.address, PORT, password) == ANSWERED

        remove = RemoveDatabase(
            request_id=rid(), database_id=made.database_id, team_id=made.team_id, server_id=server_id
        )
        assert (await rig.wait(await rig.send(remove)))["state"] == "removed"
        assert _remote_inspect(edge.docker_host, proxy.name(made.database_id)) is None
        assert _remote_inspect(edge.docker_host, made.container) is None
    finally:
        for server in servers:
            stop_server(server)
        remove_net(net)
