"""An uploaded or deleted certificate reaches what runs without a deployment: the api sends
``evt.certificates.changed`` (through the outbox, in the upload's or the deletion's transaction) for each
of the team's applications with a host the certificate lists, with the whole set those hosts are served
with now, chosen as a deployment chooses it (the key sealed on the bus); none for a host no application
has, none for another team's deletion refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest

from berth_common.bus import subscriptions_confirmed
from berth_common.envelope import Envelope
from tests.api.conftest import make_app
from tests.api.scheduler_double import Received
from tests.api.test_certificates import APP, SHOP, _body
from tests.api.test_deployments import SealedAs
from tests.api.test_projects import problem
from tests.api.tls_certs import pki

REFRESH = "evt.certificates.changed"


class Changes:
    """Every ``evt.certificates.changed`` on the bus, in arrival order (``Received`` of the scheduler
    double: subject, raw bytes, envelope)."""

    def __init__(self) -> None:
        self.seen: list[Received] = []
        self.nc: Any = None

    async def start(self, url: str) -> Changes:
        self.nc = await nats.connect(url)

        async def on_msg(msg: Any) -> None:
            self.seen.append(Received(msg.subject, msg.data, Envelope.from_bytes(msg.data), dict(msg.headers or {})))

        await self.nc.subscribe(REFRESH, cb=on_msg)
        await subscriptions_confirmed(self.nc)
        return self

    async def wait_for(self, subject: str, count: int = 1, timeout: float = 10.0) -> list[Received]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.seen) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{len(self.seen)} of {count} {subject} arrived")
            await asyncio.sleep(0.05)
        return list(self.seen)

    async def settled(self, subject: str, quiet_s: float = 1.5) -> list[Received]:
        """What arrived once nothing more came for ``quiet_s``."""
        count = -1
        while count != len(self.seen):
            count = len(self.seen)
            await asyncio.sleep(quiet_s)
        return list(self.seen)


@pytest.fixture
async def changes(nats_server, api) -> AsyncIterator[Changes]:
    recorder = await Changes().start(nats_server.url)
    yield recorder
    await recorder.nc.close()


async def test_an_upload_and_a_delete_send_the_hosts_new_certificates(client, members, changes):
    app = await make_app(client, members.developer, APP)
    hosts = app["services"][0]["hosts"]  # the generated host, then the domains
    ca = pki()
    leaf = ca.leaf([SHOP, f"www.{SHOP}"])
    r = await client.post(
        "/v1/certificates",
        headers=members.developer,
        json={**_body(leaf, [ca.intermediate], name="own"), "application_id": app["id"]},
    )
    assert r.status_code == 201, r.text
    own = r.json()
    (first,) = await changes.wait_for(REFRESH, 1)
    assert first.envelope.id == f"certificate-refresh-{app['id']}-{first.data['revision']}"
    assert first.data == {
        "team_id": first.data["team_id"],  # the caller's team
        "application_id": app["id"],
        "hosts": hosts,
        "certificates": [
            {
                "certificate_id": own["id"],
                "hosts": [SHOP, f"www.{SHOP}"],
                "chain_pem": leaf.pem + ca.intermediate.pem,
                "key": SealedAs(leaf.key_pem, f"berth/certificate/{own['id']}"),
            }
        ],
        "revision": first.data["revision"],
    }
    assert first.data["team_id"] and "PRIVATE KEY" not in first.raw.decode()

    # a team's certificate for a host nobody has: no refresh; one for the application's www host: its set,
    # where the application's own still comes first
    nobody = _body(ca.leaf(["free.example.net"]), [ca.intermediate], name="free", hosts=["free.example.net"])
    assert (await client.post("/v1/certificates", headers=members.developer, json=nobody)).status_code == 201
    www_leaf = ca.leaf([f"www.{SHOP}"])
    team = _body(www_leaf, [ca.intermediate], name="team", hosts=[f"www.{SHOP}"])
    r = await client.post("/v1/certificates", headers=members.developer, json=team)
    assert r.status_code == 201, r.text
    team_cert = r.json()
    first, second = await changes.wait_for(REFRESH, 2)
    assert second.data["application_id"] == app["id"] and second.data["revision"] > first.data["revision"]
    assert [c["certificate_id"] for c in second.data["certificates"]] == [own["id"]]

    # another team cannot delete it (and nothing is sent); its deletion sends the set without it
    problem(await client.delete(f"/v1/certificates/{own['id']}", headers=members.other), 404)
    assert (await client.delete(f"/v1/certificates/{own['id']}", headers=members.admin)).status_code == 204
    *_, third = await changes.wait_for(REFRESH, 3)
    assert third.data["revision"] > second.data["revision"]
    assert third.data["certificates"] == [
        {
            "certificate_id": team_cert["id"],
            "hosts": [f"www.{SHOP}"],
            "chain_pem": www_leaf.pem + ca.intermediate.pem,
            "key": SealedAs(www_leaf.key_pem, f"berth/certificate/{team_cert['id']}"),
        }
    ]
    assert (await client.delete(f"/v1/certificates/{team_cert['id']}", headers=members.admin)).status_code == 204
    *_, fourth = await changes.wait_for(REFRESH, 4)
    assert fourth.data["certificates"] == [] and fourth.data["hosts"] == hosts
    assert len(await changes.settled(REFRESH)) == 4
