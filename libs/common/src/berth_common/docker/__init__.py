"""Docker engines: where each one answers (:mod:`.engine`, pure) and the one connection factory
(:mod:`.factory`) through which builder, scheduler and metrics reach them."""

from berth_common.docker.engine import (
    API_VERSION,
    DEFAULT_SOCKET,
    LOCAL,
    DockerUnavailable,
    Endpoint,
    Engine,
    check_api_version,
    endpoint,
    local_engine,
)
from berth_common.docker.factory import DockerEngines, Resolver, Stream, unreachable

__all__ = [
    "API_VERSION",
    "DEFAULT_SOCKET",
    "LOCAL",
    "DockerEngines",
    "DockerUnavailable",
    "Endpoint",
    "Engine",
    "Resolver",
    "Stream",
    "check_api_version",
    "endpoint",
    "local_engine",
    "unreachable",
]
