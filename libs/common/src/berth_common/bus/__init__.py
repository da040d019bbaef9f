"""The Berth bus on NATS JetStream: streams, publishing, durable consumers, dead letters, request/reply."""

from berth_common.bus.client import (
    Bus,
    QueryFailedError,
    ServiceUnavailableError,
    derived_id,
    nats_servers,
    subscriptions_confirmed,
)
from berth_common.bus.consumer import ConsumerConflictError, Delivery, PermanentError, TransientError
from berth_common.bus.streams import (
    StreamConflictError,
    StreamReplicasError,
    StreamSpec,
    declare_streams,
    default_streams,
)

__all__ = [
    "Bus",
    "ConsumerConflictError",
    "Delivery",
    "PermanentError",
    "QueryFailedError",
    "ServiceUnavailableError",
    "StreamConflictError",
    "StreamReplicasError",
    "StreamSpec",
    "TransientError",
    "declare_streams",
    "default_streams",
    "derived_id",
    "nats_servers",
    "subscriptions_confirmed",
]
