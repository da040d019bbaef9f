"""Server and certificate events reach subscribed channels: the metrics service, a real engine behind a relay
the test stops, the notifier and a local webhook receiver (HMAC checked), end to end."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from berth_common.catalogue import CertificateExpiring, ServerUnreachable, WebhookTarget
from tests.metrics.relay import Relay
from tests.metrics.service import containers, eventually, metrics_service, run_busybox
from tests.support.receivers import WebhookReceiver

SECRET = "whsec-server-events-0123456789"


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bn-relay-"))  # short: a unix socket path has at most 107 bytes
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.docker
async def test_an_unreachable_server_reaches_the_teams_with_containers_on_it(
    start_notifier, nats_server, database, unique, sock_dir
):
    team, bystander = f"team-{unique}", f"other-{unique}"
    hook, quiet, other = [await WebhookReceiver(SECRET).start() for _ in range(3)]
    relay = await Relay(sock_dir / "docker.sock").start()
    n = await start_notifier()
    try:
        await n.channel(team, "ops-hook", WebhookTarget(url=hook.url(), signing_secret=SECRET), ["evt.server.*"])
        await n.channel(team, "deploys", WebhookTarget(url=quiet.url(), signing_secret=SECRET), ["evt.deployment.>"])
        await n.channel(bystander, "ops", WebhookTarget(url=other.url(), signing_secret=SECRET), ["evt.server.>"])
        async with containers() as made:
            made.append(run_busybox(labels={"berth.team": team, "berth.app": f"a-{unique}"}, command=["sleep", "600"]))
            settings = {"metrics_docker_url": relay.url, "metrics_server_down_after": 2}
            async with metrics_service(nats_server.url, database, **settings) as running:
                collector = running.ctx.extra["collector"]
                await eventually(lambda: team in collector.teams(), 30)
                await relay.stop()
                received = (await hook.wait_accepted(1, timeout=40))[0].json
                assert received["type"] == "evt.server.unreachable" and not hook.problems
                assert received["data"] == {"server": "test-vm", "failed_checks": 2}  # the facts shown
                assert received["title"] == "Server unreachable" and received["severity"] == "error"
                assert (
                    received["summary"]
                    == "Server test-vm is unreachable: its Docker engine does not answer (2 checks in a row)"
                )
                assert received["team_id"] == team and "did not answer 2 collections" in received["reason"]
                await relay.start()
                back = (await hook.wait_accepted(2, timeout=40))[1].json
                assert back["type"] == "evt.server.back" and back["severity"] == "success"
                assert back["summary"].startswith("Server test-vm answers again after")
        # the team's other channel is not subscribed to server events; the bystander team has nothing there
        assert quiet.requests == [] and other.requests == []
        assert [d.event_type for d in await n.deliveries(team)] == ["evt.server.back", "evt.server.unreachable"]
    finally:
        await relay.stop()
        for r in (hook, quiet, other):
            await r.stop()


async def test_a_subscription_selects_certificate_expiring(notifier):
    """No producer yet (it comes with TLS); the event type is in the catalogue and subscriptions select it."""
    team = "team-certs"
    certs, servers = [await WebhookReceiver(SECRET).start() for _ in range(2)]
    try:
        await notifier.channel(
            team, "certs", WebhookTarget(url=certs.url(), signing_secret=SECRET), ["evt.certificate.expiring"]
        )
        await notifier.channel(
            team, "servers", WebhookTarget(url=servers.url(), signing_secret=SECRET), ["evt.server.>"]
        )
        expires = datetime.now(UTC) + timedelta(days=5, hours=1)
        await notifier.publish(
            CertificateExpiring(domain="shop.example.com", expires_at=expires, days_left=5.04, team_id=team)
        )
        await notifier.publish(  # a server event naming no team of this test's: nobody here hears of it
            ServerUnreachable(server="vm9", outage_id="o1", team_ids=["someone-else"], down_since=expires)
        )
        got = (await certs.wait_accepted(1, timeout=15))[0].json
        assert got["type"] == "evt.certificate.expiring" and got["severity"] == "warning"
        assert got["summary"] == "The certificate of shop.example.com expires in 5 days"
        assert servers.requests == []
    finally:
        await certs.stop()
        await servers.stop()
