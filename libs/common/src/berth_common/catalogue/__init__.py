"""The message catalogue: every command, event and query on the bus, as a pydantic model.

Commands are imperative (``cmd.build.start``) and go to exactly one owning service through the work-queue
stream; events are past tense (``evt.build.succeeded``) and fan out to every subscriber; queries are core
NATS request/reply on ``rpc.<service>.<name>``. The AsyncAPI document is generated from this catalogue.
``PRODUCERS`` and ``CONSUMERS`` name who sends and who receives each message (``parties``).
One module per area; everything is re-exported here, so ``from berth_common.catalogue import X`` works.
"""

from berth_common.catalogue.applications import *  # noqa: F403
from berth_common.catalogue.backups import *  # noqa: F403
from berth_common.catalogue.base import *  # noqa: F403
from berth_common.catalogue.base import REGISTRY, Command, Event, Id, Message, Query, model_for, register
from berth_common.catalogue.buffering import *  # noqa: F403
from berth_common.catalogue.builds import *  # noqa: F403
from berth_common.catalogue.compose_runtime import *  # noqa: F403
from berth_common.catalogue.compose_storage import *  # noqa: F403
from berth_common.catalogue.composed import *  # noqa: F403
from berth_common.catalogue.container_logs import *  # noqa: F403
from berth_common.catalogue.containers import *  # noqa: F403
from berth_common.catalogue.databases import *  # noqa: F403
from berth_common.catalogue.deployments import *  # noqa: F403
from berth_common.catalogue.drills import *  # noqa: F403
from berth_common.catalogue.files import *  # noqa: F403
from berth_common.catalogue.fleet import *  # noqa: F403
from berth_common.catalogue.jobs import *  # noqa: F403
from berth_common.catalogue.mounts import *  # noqa: F403
from berth_common.catalogue.notifications import *  # noqa: F403
from berth_common.catalogue.parties import *  # noqa: F403
from berth_common.catalogue.platform import *  # noqa: F403
from berth_common.catalogue.port_hosts import *  # noqa: F403
from berth_common.catalogue.published_ports import *  # noqa: F403
from berth_common.catalogue.routes import *  # noqa: F403
from berth_common.catalogue.runs import *  # noqa: F403
from berth_common.catalogue.schedules import *  # noqa: F403
from berth_common.catalogue.secret_args import *  # noqa: F403
from berth_common.catalogue.servers import *  # noqa: F403
from berth_common.catalogue.swarms import *  # noqa: F403
from berth_common.catalogue.tls import *  # noqa: F403

__all__ = ["REGISTRY", "Command", "Event", "Id", "Message", "Query", "model_for", "register"]
