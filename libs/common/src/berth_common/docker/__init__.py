"""Docker engines: where each one answers (:mod:`.engine`, pure), the one connection factory
(:mod:`.factory`) through which builder, scheduler, proxy-sync and metrics reach them, and Berth's own client
of the Engine API (:mod:`.api` over the HTTP of :mod:`.wire`)."""

from berth_common.docker.api import EngineApi
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
from berth_common.docker.factory import UNREACHABLE, DockerEngines, Resolver, Stream, unreachable
from berth_common.docker.wire import Attached, EngineError, Response

__all__ = [
    "API_VERSION",
    "DEFAULT_SOCKET",
    "LOCAL",
    "UNREACHABLE",
    "Attached",
    "DockerEngines",
    "DockerUnavailable",
    "Endpoint",
    "Engine",
    "EngineApi",
    "EngineError",
    "Resolver",
    "Response",
    "Stream",
    "check_api_version",
    "endpoint",
    "local_engine",
    "unreachable",
]
