"""Images reach a server without a registry: the local engine's save stream loaded into the server's engine."""

from __future__ import annotations

import pytest

from berth_common import image_delivery as d
from berth_common import ssh
from tests.support.images import busybox_image
from tests.support.testservers import running_servers


def test_calls_are_exact_data() -> None:
    assert d.save_call("registry.local:5000/team/app:1.2") == d.EngineCall(
        "GET", "/v1.41/images/registry.local%3A5000%2Fteam%2Fapp%3A1.2/get"
    )
    assert d.load_call() == d.EngineCall("POST", "/v1.41/images/load", (("quiet", "1"),), "application/x-tar")
    with pytest.raises(ValueError):
        d.save_call("-oops")
    with pytest.raises(ValueError):
        d.save_call("a b")


def test_the_load_answer_is_read() -> None:
    assert d.load_result('{"stream":"Loaded image: berth/busybox:1\\n"}\n') == "Loaded image: berth/busybox:1"
    with pytest.raises(d.DeliveryError, match="no space left on device"):
        d.load_result('{"errorDetail":{"message":"write /x: no space left on device"},"error":"write"}\n')


@pytest.mark.slow
async def test_an_image_is_delivered_over_ssh(tmp_path) -> None:
    image = busybox_image()
    with running_servers(1) as [server]:
        pool = ssh.SshPool(tmp_path / "s")
        try:
            target = ssh.SshTarget(
                server.address,
                22,
                "root",
                server.private_key_pem,
                server.host_key.export_public_key("openssh").decode().strip(),
            )
            remote = await pool.docker_socket("srv", target)
            sent = await d.deliver_image("/var/run/docker.sock", remote, image)
            assert sent > 1_000_000  # busybox's layer
            assert image in server.docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}").split()
            with pytest.raises(d.DeliveryError, match="the source engine has no image"):
                await d.deliver_image("/var/run/docker.sock", remote, "berth/no-such-image:0")
        finally:
            await pool.close()
