"""Probe a server over SSH for :func:`berth_scheduler.domain.servers.evaluate`.

Connects (pinning the host key at first contact), asks whether the Docker socket exists and is usable,
reads the engine's version and architecture through the connection factory (the forwarded socket), and the free disk space under
the engine's data root. Every remote command is argv from the domain, quoted by ``berth_common.ssh``.
"""

from __future__ import annotations

import asyncio

from berth_common import ssh, ssh_keys
from berth_common.docker import DockerEngines, DockerUnavailable, EngineError, local_engine
from berth_common.docker.remote import connect_server
from berth_scheduler.domain import servers as dom


async def _engine_facts(
    engines: DockerEngines, pool: ssh.SshPool, server_id: str, target: ssh.SshTarget, timeout: float
) -> tuple[dict[str, object], dict[str, object]]:
    """(``/version``, ``/info``) of the server's engine, reached through the connection factory."""
    await connect_server(engines, pool, server_id, target)
    version = await engines.version(server_id, timeout)
    async with asyncio.timeout(timeout):
        info: dict[str, object] = dict(await engines.api(server_id).get("info"))
    return version, info


async def probe(
    pool: ssh.SshPool,
    server_id: str,
    target: ssh.SshTarget,
    *,
    timeout: float = 10.0,
    engines: DockerEngines | None = None,
) -> dom.ServerFacts:
    """What the server has. With no pinned key, the key seen at first contact is pinned for the rest.
    The engine is asked through ``engines`` (a factory of its own, closed after, when none is given)."""
    own = engines is None
    engines = engines or DockerEngines(local_engine(None))
    try:
        return await _probe(pool, engines, server_id, target, timeout)
    finally:
        await engines.close(None if own else server_id)


async def _probe(
    pool: ssh.SshPool, engines: DockerEngines, server_id: str, target: ssh.SshTarget, timeout: float
) -> dom.ServerFacts:
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
    for _ in range(2):  # once more when the check itself did not run (a busy server)
        code, _out, err = await pool.run(server_id, target, present, timeout)
        facts.socket_present = code == 0
        facts.socket_check_error = "" if code in (0, 1) else f"exit {code}: {err.strip()[-200:]}".rstrip(": ")
        if not facts.socket_check_error:
            break
    if not facts.socket_present:
        return facts
    facts.socket_usable = (await pool.run(server_id, target, writable, timeout))[0] == 0
    if not facts.socket_usable:
        return facts
    try:
        version, info = await _engine_facts(engines, pool, server_id, target, timeout)
    except (ssh.SshError, DockerUnavailable, EngineError, OSError, TimeoutError) as exc:
        facts.socket_usable, facts.socket_error = False, str(exc) or type(exc).__name__
        return facts
    facts.docker_version = str(version.get("Version") or "") or None
    facts.api_version = str(version.get("ApiVersion") or "") or None
    facts.architecture = str(info.get("Architecture") or version.get("Arch") or "") or None
    facts.docker_root = str(info.get("DockerRootDir") or "/var/lib/docker")
    for _ in range(2):  # once more when the answer was cut short (a busy server)
        code, out, err = await pool.run(server_id, target, dom.disk_command(facts.docker_root), timeout)
        facts.free_bytes = dom.parse_df(out) if code == 0 else None
        if facts.free_bytes is not None:
            facts.disk_error = ""
            break
        facts.disk_error = err.strip()[-200:] or (f"df exited {code}" if code else f"df printed {out[:100]!r}")
    return facts
