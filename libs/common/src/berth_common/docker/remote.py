"""A remote server's engine in the connection factory: its Docker socket forwarded over SSH.

:func:`connect_server` asks the SSH pool for the server's forwarded socket and adds the engine at that
path to :class:`~berth_common.docker.factory.DockerEngines`, so every caller reaches a remote engine exactly
as it reaches the local one (``engines.client(server_id)``). Called again after the SSH connection dropped,
it forwards a new socket and the factory replaces the client made for the old one.
"""

from __future__ import annotations

from berth_common.docker.engine import API_VERSION, Endpoint, Engine
from berth_common.docker.factory import DockerEngines
from berth_common.ssh import SshPool, SshTarget


async def connect_server(
    engines: DockerEngines, pool: SshPool, server_id: str, target: SshTarget, api_version: str = API_VERSION
) -> Engine:
    """The server's engine, reachable through the factory under ``server_id``."""
    path = await pool.docker_socket(server_id, target)
    engine = Engine(Endpoint(unix_path=path), api_version, server_id)
    await engines.add(engine)
    return engine
