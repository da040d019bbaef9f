"""Probe a server over SSH for :func:`berth_scheduler.domain.servers.evaluate`.

Connects (pinning the host key at first contact), asks whether the Docker socket exists and is usable,
reads the engine's version and architecture through the forwarded socket, and the free disk space under
the engine's data root. Every remote command is argv from the domain, quoted by ``berth_common.ssh``.
"""

from __future__ import annotations

import json

import aiohttp

from berth_common import ssh, ssh_keys
from berth_scheduler.domain import servers as dom


async def _engine_get(socket_path: str, path: str, timeout: float) -> dict[str, object]:
    connector = aiohttp.UnixConnector(path=socket_path)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as http:
        async with http.get(f"http://docker/v1.41{path}") as resp:
            body = await resp.text()
            if resp.status != 200:
                raise RuntimeError(f"the engine answered {resp.status} to GET {path}: {body[:200]}")
            data = json.loads(body)
            if not isinstance(data, dict):
                raise RuntimeError(f"the engine answered GET {path} with no object")
            return data


async def probe(pool: ssh.SshPool, server_id: str, target: ssh.SshTarget, *, timeout: float = 10.0) -> dom.ServerFacts:
    """What the server has. With no pinned key, the key seen at first contact is pinned for the rest."""
    facts = dom.ServerFacts(address=f"{target.host}:{target.port}")
    try:
        if target.host_key is None:
            key = await ssh.first_contact(target, timeout=timeout)
            target = ssh.SshTarget(target.host, target.port, target.user, target.private_key, key)
        await pool.connection(server_id, target)
    except ssh.SshError as exc:
        facts.connect_error = str(exc)
        facts.error_kind = exc.kind
        return facts
    facts.host_key = target.host_key
    facts.fingerprint = ssh_keys.fingerprint(target.host_key or "")
    present, writable = dom.socket_commands()
    facts.socket_present = (await pool.run(server_id, target, present, timeout))[0] == 0
    if not facts.socket_present:
        return facts
    facts.socket_usable = (await pool.run(server_id, target, writable, timeout))[0] == 0
    if not facts.socket_usable:
        return facts
    try:
        path = await pool.docker_socket(server_id, target, dom.DOCKER_SOCKET)
        version = await _engine_get(path, "/version", timeout)
        info = await _engine_get(path, "/info", timeout)
    except (ssh.SshError, OSError, RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
        facts.socket_usable, facts.socket_error = False, str(exc) or type(exc).__name__
        return facts
    facts.docker_version = str(version.get("Version") or "") or None
    facts.api_version = str(version.get("ApiVersion") or "") or None
    facts.architecture = str(info.get("Architecture") or version.get("Arch") or "") or None
    facts.docker_root = str(info.get("DockerRootDir") or "/var/lib/docker")
    code, out, err = await pool.run(server_id, target, dom.disk_command(facts.docker_root), timeout)
    facts.free_bytes = dom.parse_df(out) if code == 0 else None
    facts.disk_error = "" if code == 0 else (err.strip()[-200:] or f"df exited {code}")
    return facts
