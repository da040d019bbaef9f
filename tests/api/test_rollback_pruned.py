"""A rollback to a deployment whose image retention removed is refused at once (409, naming the deployment),
not sent to a server where it would fail: the scheduler tells which built tags it removed
(``evt.application.images_pruned``), and the api records it on the deployments that ran them."""

from __future__ import annotations

import asyncio

from berth_common.catalogue import ImagesPruned
from tests.api.test_deployments import _deploy, _git_app, _until
from tests.api.test_projects import problem


async def test_a_rollback_to_a_deployment_whose_image_was_pruned_is_refused(client, members, scheduler) -> None:
    app = await _git_app(client, members)
    aid = app["id"]
    images, deps = [], []
    for n in (1, 2, 3):
        dep = await _deploy(client, members.developer, aid)
        (*_, cmd) = await scheduler.wait_for("cmd.deployment.start", n)
        images.append(await scheduler.run_to_success(cmd))
        await _until(client, members.viewer, dep["id"], lambda b: b["state"] == "succeeded")
        deps.append(dep)
        await asyncio.sleep(0.01)
    assert (await client.get(f"/v1/deployments/{deps[0]['id']}", headers=members.viewer)).json()[
        "images_pruned_at"
    ] is None

    # the scheduler removed the first two deployments' images (told twice: the same message id)
    event = ImagesPruned(application_id=aid, images=[images[0], images[1], "berth/other:gone"])
    for _ in range(2):
        await scheduler.bus.publish(event, id=f"images-pruned-{aid}-1")
    for dep in deps[:2]:
        pruned = await _until(client, members.viewer, dep["id"], lambda b: b["images_pruned_at"] is not None)
        assert pruned["state"] == "succeeded"
    live = (await client.get(f"/v1/deployments/{deps[2]['id']}", headers=members.viewer)).json()
    assert live["images_pruned_at"] is None

    # the default target (the one before the live one) and a named one: refused, nothing recorded
    before = (await client.get(f"/v1/applications/{aid}/deployments", headers=members.viewer)).json()
    body = problem(await client.post(f"/v1/applications/{aid}/rollback", headers=members.developer), 409)
    assert f"The image of deployment {deps[1]['id']} was removed by image retention" in body["detail"], body
    named = {"deployment_id": deps[0]["id"]}
    body = problem(await client.post(f"/v1/applications/{aid}/rollback", headers=members.developer, json=named), 409)
    assert deps[0]["id"] in body["detail"] and "deploy its commit instead" in body["detail"], body
    assert (await client.get(f"/v1/applications/{aid}/deployments", headers=members.viewer)).json() == before
    await asyncio.sleep(0.2)
    assert len(await scheduler.wait_for("cmd.deployment.start", 3)) == 3  # no fourth command

    # a deployment whose image was kept still rolls back
    kept = {"deployment_id": deps[2]["id"]}
    r = await client.post(f"/v1/applications/{aid}/rollback", headers=members.developer, json=kept)
    assert r.status_code == 202 and r.json()["source"]["image"] == images[2], r.text
