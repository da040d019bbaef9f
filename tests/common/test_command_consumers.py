"""Commands travel on a work-queue stream (``BERTH_CMD``): JetStream gives each message to one consumer, and
refuses a second consumer whose filter overlaps. So every command names exactly one consumer; a fact two
services act on is an event (``evt.certificates.changed``: proxy-sync and the scheduler)."""

from __future__ import annotations

from nats.js.api import RetentionPolicy

from berth_common.bus.streams import CMD_STREAM, default_streams
from berth_common.catalogue import REGISTRY, CertificatesChanged


def test_every_command_has_one_consumer():
    (cmd,) = [s for s in default_streams() if s.name == CMD_STREAM]
    assert cmd.retention == RetentionPolicy.WORK_QUEUE
    several = {t: m.CONSUMERS for t, m in REGISTRY.items() if m.KIND == "command" and len(m.CONSUMERS) != 1}
    assert several == {}
    assert CertificatesChanged.KIND == "event" and set(CertificatesChanged.CONSUMERS) == {"proxy-sync", "scheduler"}
