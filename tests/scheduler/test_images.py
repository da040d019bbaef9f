"""The pure rules of pulling prebuilt images (``domain.images``), by exact comparison: the pull policy, the
engine call, progress lines, failures, digests, and the state machine's ``ImageReady``."""

from __future__ import annotations

import base64
import json

import pytest

from berth_common.catalogue import ApplicationSpec
from berth_common.registries import parse
from berth_scheduler.domain import images
from berth_scheduler.domain.images import PullCall

DIGEST = "sha256:" + "ab" * 32


def test_pull_policy_defaults_and_berths_own_images():
    assert images.effective_policy(parse("nginx:1.27"), None) == "always"
    assert images.effective_policy(parse(f"nginx@{DIGEST}"), None) == "if-missing"
    assert images.effective_policy(parse("nginx:1.27"), "if-missing") == "if-missing"
    assert images.effective_policy(parse(f"nginx@{DIGEST}"), "always") == "always"
    assert images.effective_policy(parse("berth/shop:0123abcd"), "always") == "never"
    assert images.effective_policy(parse("berth/busybox:1"), None) == "never"
    assert images.effective_policy(parse("ghcr.io/berth/app:1"), None) == "always"  # not Berth's namespace
    assert [images.must_pull(p, present) for p in ("always", "if-missing", "never") for present in (True, False)] == [
        True,
        True,
        False,
        True,
        False,
        False,
    ]


def test_the_pull_call_is_data():
    assert images.pull_call(parse("nginx")) == PullCall(
        "POST", "images/create", {"fromImage": "nginx", "tag": "latest"}, {}
    )
    assert images.pull_call(parse("127.0.0.1:5000/team/app:v1"), "HEADER") == PullCall(
        "POST", "images/create", {"fromImage": "127.0.0.1:5000/team/app", "tag": "v1"}, {"X-Registry-Auth": "HEADER"}
    )
    assert images.pull_call(parse(f"ghcr.io/a/b:1@{DIGEST}")) == PullCall(
        "POST", "images/create", {"fromImage": "ghcr.io/a/b", "tag": DIGEST}, {}
    )
    assert "HEADER" not in repr(images.pull_call(parse("a/b:1"), "HEADER"))  # the header holds a password


def test_registry_auth_header_is_base64url_json():
    header = images.registry_auth_header("127.0.0.1:5000", "deploy", "s3cr3t/+=")
    assert json.loads(base64.urlsafe_b64decode(header)) == {
        "username": "deploy",
        "password": "s3cr3t/+=",
        "serveraddress": "127.0.0.1:5000",
    }


def test_progress_lines_leave_out_the_chatty_states():
    stream = [
        {"status": "Pulling from team/app", "id": "v1"},
        {"status": "Pulling fs layer", "progressDetail": {}, "id": "a1b2"},
        {"status": "Downloading", "progressDetail": {"current": 10, "total": 99}, "progress": "[=> ]", "id": "a1b2"},
        {"status": "Verifying Checksum", "progressDetail": {}, "id": "a1b2"},
        {"status": "Download complete", "progressDetail": {}, "id": "a1b2"},
        {"status": "Extracting", "progressDetail": {"current": 5, "total": 9}, "id": "a1b2"},
        {"status": "Pull complete", "progressDetail": {}, "id": "a1b2"},
        {"status": f"Digest: {DIGEST}"},
        {"status": "Status: Downloaded newer image for 127.0.0.1:5000/team/app:v1"},
    ]
    assert [line for m in stream if (line := images.progress_line(m))] == [
        "pull: v1: Pulling from team/app",
        "pull: a1b2: Pulling fs layer",
        "pull: a1b2: Download complete",
        "pull: a1b2: Pull complete",
        f"pull: Digest: {DIGEST}",
        "pull: Status: Downloaded newer image for 127.0.0.1:5000/team/app:v1",
    ]
    ref = parse("127.0.0.1:5000/team/app:v1")
    assert [d for m in stream if (d := images.stream_digest(ref, m))] == [f"127.0.0.1:5000/team/app@{DIGEST}"]
    assert images.stream_error({"errorDetail": {"message": "unauthorized: x"}, "error": "unauthorized: x"}) == (
        "unauthorized: x"
    )
    assert images.stream_error({"status": "Pulling fs layer"}) is None


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ("Head http://127.0.0.1:5000/v2/app/manifests/v1: no basic auth credentials", "unauthorized"),
        ("unauthorized: authentication required", "unauthorized"),
        ("pull access denied for acme/app, repository does not exist or may require 'docker login'", "unauthorized"),
        ("manifest for 127.0.0.1:5000/app:v9 not found: manifest unknown: manifest unknown", "not_found"),
        ('Get "http://127.0.0.1:9/v2/": dial tcp 127.0.0.1:9: connect: connection refused', "unreachable"),
        ('Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host', "unreachable"),
        ("something else entirely", "other"),
        # the engine's words on a full disk (a path and "timeout"-like words must not read as the registry's)
        ("error creating temporary lease: write /d/containerd/meta.db: no space left on device: unknown", "disk_full"),
        (
            "failed to register layer: Error processing tar file(exit status 1): write /bin/x: no space left on device",
            "disk_full",
        ),
    ],
)
def test_failures_are_classified(error, kind):
    assert images.failure_kind(error) == kind


def test_failure_reasons_say_what_to_do():
    ref = parse("127.0.0.1:5000/team/app:v1")
    anonymous = images.failure_reason(ref, "no basic auth credentials", with_credentials=False, present=False)
    assert anonymous == (
        "image '127.0.0.1:5000/team/app:v1' is not on this server and could not be pulled: 127.0.0.1:5000 refused "
        "an anonymous pull: the image does not exist there or is private (check the name, or add the registry with "
        "credentials: POST /v1/registries): no basic auth credentials"
    )
    wrong = images.failure_reason(ref, "unauthorized: authentication required", with_credentials=True, present=True)
    assert wrong.startswith("could not pull '127.0.0.1:5000/team/app:v1': 127.0.0.1:5000 refused the credentials")
    missing = images.failure_reason(ref, "manifest unknown", with_credentials=False, present=False)
    assert "has no such image (check the repository name and the tag or digest)" in missing
    down = images.failure_reason(ref, "dial tcp: connection refused", with_credentials=False, present=False)
    assert "could not be reached from this server" in down and "is not on this server" in down
    full = images.failure_reason(ref, "write /d/meta.db: no space left on device", with_credentials=False, present=True)
    assert full == (
        "could not pull '127.0.0.1:5000/team/app:v1': the server's disk has no room for it: free space there "
        "(docker system prune, a larger disk) and deploy again: write /d/meta.db: no space left on device"
    )


def test_the_layers_sizes_are_read_from_the_pull_stream():
    downloading = {"status": "Downloading", "progressDetail": {"current": 5, "total": 25173688}, "id": "a71aafb93e76"}
    assert images.layer_total(downloading) == ("a71aafb93e76", 25173688)
    assert images.layer_total({"status": "Extracting", "progressDetail": {"current": 5, "total": 9}, "id": "a"}) is None
    assert images.layer_total({"status": "Pulling fs layer", "progressDetail": {}, "id": "a"}) is None


def test_the_digest_is_the_one_of_the_repository_named():
    ref = parse("127.0.0.1:5000/team/app:v1")
    other = f"127.0.0.1:6000/else@{DIGEST}"
    mine = f"127.0.0.1:5000/team/app@sha256:{'cd' * 32}"
    assert images.digest_of(ref, [other, mine]) == mine
    assert images.digest_of(ref, [other]) is None  # another repository's digest would pull from elsewhere
    assert images.digest_of(ref, []) is None
    assert images.digest_of(parse("nginx:1.27"), [f"nginx@{DIGEST}"]) == f"nginx@{DIGEST}"
    assert images.digest_of(parse("docker.io/library/nginx:1"), [f"nginx@{DIGEST}"]) == f"nginx@{DIGEST}"


def test_registry_credentials_travel_sealed_and_are_redacted():
    spec = ApplicationSpec.model_validate(
        {
            "name": "shop",
            "source": {
                "kind": "image",
                "image": "127.0.0.1:5000/team/app:v1",
                "pull_policy": "if-missing",
                "auth": {"registry": "127.0.0.1:5000", "username": "deploy", "password": "pw-never-shown"},
            },
            "services": [{"kind": "worker", "name": "jobs"}],
        }
    )
    wire = spec.model_dump_json()
    assert "pw-never-shown" not in wire and "pw-never-shown" not in repr(spec)
    back = ApplicationSpec.model_validate_json(wire)
    assert back.source.auth.reveal() == "pw-never-shown"  # type: ignore[union-attr]
    assert back.secret_values() == ["pw-never-shown"]
    plain = ApplicationSpec.model_validate(
        {"name": "shop", "source": {"kind": "image", "image": "nginx"}, "services": [{"kind": "worker", "name": "j"}]}
    )
    assert plain.model_dump(mode="json")["source"] == {"kind": "image", "image": "nginx"}  # unset: left out


def test_image_ready_records_the_digest_restarts_the_readiness_deadline_and_reaches_success():
    from berth_scheduler.domain import machine as m
    from berth_scheduler.domain.machine import RefusedError, Rollout, State, Timeouts, transition

    t = Timeouts(build_s=600, readiness_s=60, route_s=30, drain_grace_s=5)
    r = Rollout("d1", "a1", "t1", State.QUEUED, False, t, created_at=100.0, image="127.0.0.1:5000/app:v1")
    r, _ = transition(r, m.Admit(), 110.0)
    assert r.deadline_at == 170.0 and r.image_digest is None
    pinned = f"127.0.0.1:5000/app@{DIGEST}"
    r, events = transition(r, m.ImageReady(pinned, "pulled"), 150.0)
    assert (r.state, r.image_digest, r.deadline_at) == (State.STARTING, pinned, 210.0)
    assert [(e.step, e.detail, e.image_digest) for e in events] == [("image ready", "pulled", pinned)]
    with pytest.raises(RefusedError):
        transition(r, m.ImageReady(pinned), 151.0)  # once
    r, _ = transition(r, m.ContainersStarted(1), 152.0)
    assert r.image_digest == pinned
    with pytest.raises(RefusedError):
        transition(r, m.ImageReady(pinned), 154.0)  # only while starting
    done = Rollout("d2", "a1", "t1", State.STOPPING_OLD, False, t, created_at=100.0, image="img:1", image_digest=pinned)
    _, events = transition(done, m.OldStopped(0, ()), 160.0)
    assert events[-1].image_digest == pinned
    local = Rollout("d3", "a1", "t1", State.STOPPING_OLD, False, t, created_at=100.0, image="img:1", image_digest="")
    _, events = transition(local, m.OldStopped(0, ()), 160.0)
    assert events[-1].image_digest is None  # found on the server with no registry digest


def test_a_scale_pulls_the_digest_the_live_deployment_ran_and_names_it_as_its_replicas_do():
    ran = f"10.9.0.1:5000/acme/side@{DIGEST}"
    assert images.scale_pull("10.9.0.1:5000/acme/side:1", ran) == images.ScalePull(
        ran,
        images.TagCall("POST", f"images/{ran}/tag", {"repo": "10.9.0.1:5000/acme/side", "tag": "1"}),
    )
    assert images.scale_pull("nginx", f"nginx@{DIGEST}") == images.ScalePull(
        f"nginx@{DIGEST}", images.TagCall("POST", f"images/nginx@{DIGEST}/tag", {"repo": "nginx", "tag": "latest"})
    )
    # no digest recorded, one of another repository, or a reference that is a digest already: as named
    assert images.scale_pull("nginx:1.27", None) == images.ScalePull("nginx:1.27")
    assert images.scale_pull("nginx:1.27", "nginx:1.27") == images.ScalePull("nginx:1.27")
    assert images.scale_pull("nginx:1.27", f"mirror.example/nginx@{DIGEST}") == images.ScalePull("nginx:1.27")
    assert images.scale_pull(f"nginx@{DIGEST}", f"nginx@{DIGEST}") == images.ScalePull(f"nginx@{DIGEST}")
