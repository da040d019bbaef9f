"""A private repository's credentials in a deployment's snapshot at the scheduler: sealed at rest with the
scheduler's key (never the plaintext, never a registry auth's shape), opened back to the same snapshot, and
forwarded to the builder's command sealed on the wire."""

from __future__ import annotations

import json

from berth_common.catalogue import ApplicationSpec, GitSource
from berth_common.catalogue.git_auth import GitAuth, HostKey
from berth_scheduler.adapters.sealing import PREFIX, Sealer
from berth_scheduler.domain.builds import Build, start_command

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"
HOST = HostKey(
    host="github.com",
    key_type="ssh-ed25519",
    key="AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
)


def spec_with(auth: GitAuth) -> ApplicationSpec:
    data = {
        "name": "shop",
        "source": {"kind": "git", "repository": "git@github.com:acme/shop.git", "ref": "main"},
        "services": [{"kind": "web", "name": "web", "port": 8080}],
    }
    spec = ApplicationSpec.model_validate(data)
    assert isinstance(spec.source, GitSource)
    return spec.model_copy(update={"source": spec.source.model_copy(update={"auth": auth})})


def test_a_deploy_key_and_a_token_are_sealed_at_rest_and_opened_back():
    for auth, secret in (
        (GitAuth(kind="ssh", private_key=KEY, host_keys=[HOST]), "b3BlbnNzaC1rZXktdjEAAAAA"),  # type: ignore[arg-type]
        (GitAuth(kind="https", username="x-access-token", token="ghp_s3cr3t"), "ghp_s3cr3t"),  # type: ignore[arg-type]
    ):
        spec = spec_with(auth)
        sealer = Sealer("key-one")
        stored = sealer.seal(spec)
        text = json.dumps(stored)
        assert secret not in text
        field = "private_key" if auth.kind == "ssh" else "token"
        assert stored["source"]["auth"][field].startswith(PREFIX)
        opened = sealer.open(json.loads(text))
        assert isinstance(opened.source, GitSource) and opened.source.auth is not None
        got = opened.source.auth.private_key_text() if auth.kind == "ssh" else opened.source.auth.token_text()
        assert got == (KEY if auth.kind == "ssh" else "ghp_s3cr3t")
        assert opened.source.auth.host_keys == auth.host_keys
        assert secret in opened.secret_values() or auth.kind == "ssh"


def test_the_build_command_carries_the_credentials_sealed():
    spec = spec_with(GitAuth(kind="https", username="x-access-token", token="ghp_s3cr3t"))  # type: ignore[arg-type]
    cmd = start_command(spec, Build("", "b1", "berth/shop:d1"), "d1", "a1", 600)
    wire = cmd.model_dump_json()
    assert "ghp_s3cr3t" not in wire and '"kind":"https"' in wire
    assert cmd.source.auth is not None and cmd.source.auth.token_text() == "ghp_s3cr3t"
