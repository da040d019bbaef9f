"""The builder's push and base-image credentials as pure data: the reference a build is pushed as, the engine
calls with their exact headers, the build log lines of a push stream, the digest it answers, failures in
words, and the BuildKit session's answer to a credentials request."""

from __future__ import annotations

import base64
import json

from pydantic import SecretStr

from berth_builder.adapters.session import CREDENTIALS, GRPC_OK, answer
from berth_builder.domain import push as p
from berth_common import registries
from berth_common.catalogue import PushTarget, RegistryAuth

AUTH = RegistryAuth(registry="127.0.0.1:5000", username="ci", password=SecretStr("s3cret"))
TARGET = PushTarget(auth=AUTH, namespace="acme")
DIGEST = "sha256:" + "ab" * 32


def _decoded(header: str) -> object:
    return json.loads(base64.urlsafe_b64decode(header))


def test_a_build_is_pushed_under_the_namespace_with_its_deployment_tag() -> None:
    plan = p.push_plan("berth/shop:dep-42", TARGET)
    assert (plan.repository, plan.tag, plan.reference) == (
        "127.0.0.1:5000/acme/shop",
        "dep-42",
        "127.0.0.1:5000/acme/shop:dep-42",
    )
    assert plan.pushed(DIGEST) == f"127.0.0.1:5000/acme/shop@{DIGEST}"
    assert "s3cret" not in repr(plan)
    assert p.push_plan("shop", PushTarget(auth=AUTH)).reference == "127.0.0.1:5000/berth/shop:latest"


def test_the_engine_calls_are_exact() -> None:
    plan = p.push_plan("berth/shop:dep-42", TARGET)
    assert p.tag_call("berth/shop:dep-42", plan) == p.EngineCall(
        "POST", "images/berth/shop:dep-42/tag", {"repo": "127.0.0.1:5000/acme/shop", "tag": "dep-42"}, {}
    )
    call = p.push_call(plan, "s3cret")
    assert (call.method, call.path, call.params, list(call.headers)) == (
        "POST",
        "images/127.0.0.1:5000/acme/shop/push",
        {"tag": "dep-42"},
        ["X-Registry-Auth"],
    )
    assert _decoded(call.headers["X-Registry-Auth"]) == {
        "username": "ci",
        "password": "s3cret",
        "serveraddress": "127.0.0.1:5000",
    }
    assert "s3cret" not in repr(call)
    assert call.headers["X-Registry-Auth"] == registries.registry_auth_header("127.0.0.1:5000", "ci", "s3cret")
    config = p.registry_config_header({"mirror.internal": ("u", "pw"), "a.example:5000": ("v", "x")})
    assert base64.urlsafe_b64decode(config) == (
        b'{"a.example:5000":{"username":"v","password":"x"},"mirror.internal":{"username":"u","password":"pw"}}'
    )


def test_the_push_stream_is_read() -> None:
    assert p.progress_line({"status": "Pushing", "id": "abc", "progressDetail": {}}) is None
    assert p.progress_line({"status": "Pushed", "id": "abc"}) == "push: abc: Pushed"
    assert p.progress_line({"status": "The push refers to repository [127.0.0.1:5000/acme/shop]"}) == (
        "push: The push refers to repository [127.0.0.1:5000/acme/shop]"
    )
    assert p.stream_digest({"aux": {"Tag": "dep-42", "Digest": DIGEST, "Size": 527}}) == DIGEST
    assert p.stream_digest({"status": f"dep-42: digest: {DIGEST} size: 527"}) == DIGEST
    assert p.stream_digest({"status": "Pushed", "id": "abc"}) is None
    assert p.stream_error({"errorDetail": {"message": "unauthorized: authentication required"}, "error": "x"}) == (
        "unauthorized: authentication required"
    )
    assert p.stream_error({"status": "Pushed"}) is None


def test_failures_say_what_to_do() -> None:
    plan = p.push_plan("berth/shop:dep-42", TARGET)
    assert p.failure_reason(plan, "unauthorized: authentication required") == (
        "could not push 127.0.0.1:5000/acme/shop:dep-42: 127.0.0.1:5000 refused the credentials of the team's "
        "push registry (check its username and password or token, and that the user may push to "
        "127.0.0.1:5000/acme/shop): unauthorized: authentication required"
    )
    assert "could not be reached from the build server" in p.failure_reason(plan, "dial tcp: connection refused")


def test_the_build_session_answers_credentials_for_a_mirror_only() -> None:
    request = b"\x0a\x0fmirror.internal"  # CredentialsRequest{Host: "mirror.internal"}
    status, reply, _ = answer(CREDENTIALS, request, {}, {"mirror.internal": ("u", "pw")})
    assert (status, reply) == (GRPC_OK, b"\x0a\x01u\x12\x02pw")  # CredentialsResponse{Username: u, Secret: pw}
    status, reply, _ = answer(CREDENTIALS, b"\x0a\x09docker.io", {}, {"mirror.internal": ("u", "pw")})
    assert (status, reply) == (GRPC_OK, b"")  # anonymous
    assert answer(CREDENTIALS, request, {}, None)[0] == "12"  # not offered: unimplemented
