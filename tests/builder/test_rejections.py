"""Injection inputs through the real handler path (nats-server, Postgres, the builder in-process): each is
answered with evt.build.failed naming the field, before any git process runs or any directory is made."""

from __future__ import annotations

import os

MARKER = "/tmp/berth-injection-{unique}"

CASES = [
    # (field in the command, value, field named in the reason)
    ("repository", "--upload-pack=touch {marker}", "source.repository"),
    ("repository", "ext::sh -c touch% {marker}", "source.repository"),
    ("repository", "ext::sh", "source.repository"),
    ("repository", "file:///etc", "source.repository"),
    ("repository", "/etc", "source.repository"),
    ("repository", "../../etc", "source.repository"),
    ("repository", "ssh://-oProxyCommand=touch%20{marker}/x", "source.repository"),
    ("ref", "main\ntouch {marker}", "source.ref"),
    ("ref", "--upload-pack=touch {marker}", "source.ref"),
    ("ref", "a..b", "source.ref"),
    ("subdirectory", "../../etc", "source.subdirectory"),
    ("subdirectory", "/etc", "source.subdirectory"),
    ("dockerfile", "../../etc/passwd", "source.dockerfile"),
]


async def test_injection_rejected_before_git(builder_factory, unique):
    b = await builder_factory()
    marker = MARKER.format(unique=unique)
    sent = []
    for i, (field, value, named) in enumerate(CASES):
        kwargs = {
            "repository": "https://example.invalid/acme/app.git",
            "ref": "main",
            field: value.format(marker=marker),
        }
        cmd = await b.start_build(build_id=f"inj-{unique}-{i}", image_tag=f"berth-test/inj:{unique}", **kwargs)
        sent.append((cmd, named))
    for cmd, named in sent:
        evt = await b.result(cmd.build_id, timeout=30)
        case = (cmd.source.model_dump(mode="json"), evt["data"]["reason"])
        assert evt["type"] == "evt.build.failed", case
        assert evt["data"]["stage"] == "source", case
        assert evt["data"]["reason"].startswith(f"invalid {named}: "), case
        assert not (b.settings.workspaces / cmd.build_id).exists(), case
        why = evt["data"]["reason"].split(": ", 1)[1]
        assert b.lines(cmd.deployment_id) == [f"rejected: {named}: {why}"], case
    assert b.handler.pipeline.git.started == 0
    assert not os.path.exists(marker)


async def test_bad_build_arg_and_image_tag(builder_factory, unique):
    b = await builder_factory()
    cmd = await b.start_build(
        build_id=f"arg-{unique}",
        repository="https://example.invalid/x.git",
        image_tag=f"berth-test/x:{unique}",
        build_args=[("OK", "1", False), ("OK", "2", False)],
    )
    evt = await b.result(cmd.build_id, timeout=30)
    assert evt["data"]["reason"] == "invalid source.build_args.OK: given twice"
    assert b.handler.pipeline.git.started == 0


async def test_legacy_engine_refuses_secret_args_without_building(builder_factory, unique, tmp_path):
    from tests.builder.support import make_repo

    repo = tmp_path / "repo"
    make_repo(repo, {"Dockerfile": "FROM scratch\n"})
    b = await builder_factory(build_engine="legacy", allow_local_git=True)
    cmd = await b.start_build(
        build_id=f"leg-{unique}",
        repository=str(repo),
        image_tag=f"berth-test/x:{unique}",
        build_args=[("TOKEN", "hunter2-secret", True)],
    )
    evt = await b.result(cmd.build_id, timeout=60)
    assert evt["type"] == "evt.build.failed" and evt["data"]["stage"] == "source"
    assert "need BuildKit secret mounts" in evt["data"]["reason"]
    assert "hunter2-secret" not in str(evt) and "hunter2-secret" not in "\n".join(b.lines(cmd.deployment_id))


async def test_symlinks_in_the_repository_cannot_reach_outside(builder_factory, unique, tmp_path):
    from tests.builder.support import git, make_repo

    repo = tmp_path / "repo"
    make_repo(repo, {"app/index.html": "x"})
    (repo / "web").symlink_to("/etc")
    (repo / "app" / "Dockerfile").symlink_to("/etc/passwd")
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "links", cwd=repo)
    b = await builder_factory(allow_local_git=True)
    via_dir = await b.start_build(
        build_id=f"ld-{unique}", repository=str(repo), subdirectory="web", image_tag="berth-test/x:1"
    )
    via_file = await b.start_build(
        build_id=f"lf-{unique}", repository=str(repo), subdirectory="app", image_tag="berth-test/x:1"
    )
    evt = await b.result(via_dir.build_id, timeout=30)
    assert (evt["data"]["stage"], evt["data"]["reason"]) == (
        "dockerfile",
        "the subdirectory 'web' goes through a symlink ('web'): not allowed",
    )
    evt = await b.result(via_file.build_id, timeout=30)
    assert evt["data"]["stage"] == "dockerfile"
    assert evt["data"]["reason"].startswith("'Dockerfile' is a symlink or unreadable")
    assert "root:" not in str(b.events) and "root:" not in "\n".join(b.lines(via_file.deployment_id))
    assert not (b.settings.workspaces / via_dir.build_id).exists()
