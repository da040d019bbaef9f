"""Events -> queued deliveries: what the notifier does with every event the catalogue names it a consumer of.

It carries out ``evt.deployment.queued``, ``evt.deployment.succeeded``, ``evt.deployment.failed``,
``evt.deployment.cancelled``, ``evt.build.failed``, ``evt.container.crashed``, ``evt.container.restarted``,
``evt.container.unhealthy``, ``evt.container.healthy``, ``evt.alert.raised``, ``evt.alert.resolved``,
``evt.server.unreachable``, ``evt.server.back``, ``evt.certificate.expiring``, ``evt.certificate.issued``,
``evt.certificate.failed``, ``evt.application.scaled``,
``evt.backup.succeeded``, ``evt.backup.failed``, ``evt.backup.missed``, ``evt.restore.succeeded``,
``evt.restore.failed``, ``evt.backup.drill_succeeded``, ``evt.backup.drill_failed``, ``evt.schedule.missed``
and ``evt.job.failed``: each arrives parsed as its catalogue model, is rendered once per team it concerns (``domain.notice``) and queued on every channel of
that team subscribed to it (``adapters.queue``, grouped when bursty); the channels' workers (``delivery``)
are woken after the commit. Deployment events also teach the notifier an application's team and project,
for the container and alert events that carry only an application id.
"""

from __future__ import annotations

from datetime import UTC, datetime

from berth_common.catalogue import Event
from berth_common.db import Unit
from berth_common.envelope import Envelope
from berth_common.logging import get_logger
from berth_notifier.adapters import queue, store
from berth_notifier.adapters.queue import Grouping
from berth_notifier.domain.audience import audience
from berth_notifier.domain.notice import render
from berth_notifier.domain.policy import group_key, worth_notifying
from berth_notifier.usecases.deps import Deps

log = get_logger(__name__)


class TeamUnknownError(LookupError):
    """The event names an application whose team the notifier has not learned (yet)."""


async def queue_event(deps: Deps, event: Event, envelope: Envelope, unit: Unit) -> list[str]:
    """Queue ``event`` on every subscribed channel of each team it concerns; returns the channels to wake.

    Raises :class:`TeamUnknownError` when the event names an application whose team is not known yet (its
    deployment event may simply not be processed yet: another consumer).
    """
    event_type, data = event.TYPE, event.model_dump(mode="json")
    if not worth_notifying(event_type, data):
        return []
    now = datetime.now(UTC)
    if (now - envelope.time).total_seconds() > deps.settings.notify_max_event_age_s:
        log.info("event too old to notify", event_type=event_type, event_id=envelope.id)
        return []
    session = unit.session
    who = audience(event)
    app_id = who.application_id
    if app_id and who.team_id:
        await store.remember_application(session, app_id, who.team_id, who.project_id)
    context = await store.application_context(session, app_id) if app_id else {}
    team_id = who.team_id or context.get("team_id")
    # An event of one team names it; a server event names every team with containers on that server.
    teams = [team_id] if team_id else list(who.team_ids)
    if not teams:
        if app_id:
            raise TeamUnknownError(f"no team known for application {app_id}")
        log.info("event names no team; nobody to notify", event_type=event_type, event_id=envelope.id)
        return []
    project_id = who.project_id or context.get("project_id")
    key, groupable = group_key(event_type, data, envelope.id)
    group = Grouping(key, groupable, deps.settings.notify_group_wait_s, deps.settings.notify_group_interval_s)
    woken: list[str] = []
    for team in teams:
        channel_ids = await store.matching_channels(session, team, event_type, project_id, app_id)
        if not channel_ids:
            continue
        notice = render(
            event_type,
            data,
            event_id=envelope.id,
            time=envelope.time,
            public_url=deps.settings.public_url,
            context={**context, "team_id": team},
        )
        await queue.enqueue(
            session,
            team_id=team,
            channel_ids=channel_ids,
            notice=notice,
            group=group,
            max_attempts=deps.settings.notify_max_attempts,
            now=now,
        )
        woken += channel_ids
    return woken
