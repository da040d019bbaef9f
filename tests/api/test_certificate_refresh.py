"""An uploaded or deleted certificate reaches what runs without a deployment: the api sends
``cmd.certificate.refresh`` (through the outbox, in the upload's or the deletion's transaction) for each
of the team's applications with a host the certificate lists, with the whole set those hosts are served
with now, chosen as a deployment chooses it (the key sealed on the bus); none for a host no application
has, none for another team's deletion refused."""

from __future__ import annotations

from tests.api.conftest import make_app
from tests.api.test_certificates import APP, SHOP, _body
from tests.api.test_deployments import SealedAs
from tests.api.test_projects import problem
from tests.api.tls_certs import pki

REFRESH = "cmd.certificate.refresh"


async def test_an_upload_and_a_delete_send_the_hosts_new_certificates(client, members, scheduler):
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
    (first,) = await scheduler.wait_for(REFRESH, 1)
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
    first, second = await scheduler.wait_for(REFRESH, 2)
    assert second.data["application_id"] == app["id"] and second.data["revision"] > first.data["revision"]
    assert [c["certificate_id"] for c in second.data["certificates"]] == [own["id"]]

    # another team cannot delete it (and nothing is sent); its deletion sends the set without it
    problem(await client.delete(f"/v1/certificates/{own['id']}", headers=members.other), 404)
    assert (await client.delete(f"/v1/certificates/{own['id']}", headers=members.admin)).status_code == 204
    *_, third = await scheduler.wait_for(REFRESH, 3)
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
    *_, fourth = await scheduler.wait_for(REFRESH, 4)
    assert fourth.data["certificates"] == [] and fourth.data["hosts"] == hosts
    assert len(await scheduler.settled(REFRESH)) == 4
