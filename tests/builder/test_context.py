"""The build context tar (real files): .dockerignore, symlinks, special files, size limit; and probing."""

from __future__ import annotations

import os
import tarfile

import pytest

from berth_builder.adapters.context import ContextError, make_context, probe, read_file, safe_dir
from berth_builder.domain.dockerignore import Matcher


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        ("", "a.txt", False),
        ("", ".git/config", True),
        ("", "sub/.git", True),
        ("*.log", "x.log", True),
        ("*.log", "dir/x.log", False),
        ("**/*.log", "dir/deep/x.log", True),
        ("**/*.log", "x.log", True),
        ("node_modules", "node_modules/a/b.js", True),
        ("/build/", "build/out.bin", True),
        ("docs\n!docs/keep.md", "docs/other.md", True),
        ("docs\n!docs/keep.md", "docs/keep.md", False),
        ("*.md\n!README.md", "README.md", False),
        ("# comment\n\n  secret.txt  ", "secret.txt", True),
        ("te?t", "test", True),
        ("te?t", "tet", False),
        ("[a-c].txt", "b.txt", True),
        ("[!a-c].txt", "b.txt", False),
        ("a\\*b", "a*b", True),
        ("a\\*b", "axb", False),
        ("dir/**", "dir/x/y", True),
        (".", "a", False),
    ],
)
def test_dockerignore(patterns, path, excluded):
    assert Matcher(patterns).excluded(path) is excluded


def _tree(root):
    (root / "app").mkdir()
    (root / "app" / "index.html").write_text("<h1>hi</h1>")
    (root / "app" / "run.sh").write_text("#!/bin/sh\n")
    (root / "app" / "run.sh").chmod(0o755)
    (root / "app" / "debug.log").write_text("noise")
    (root / "app" / "docs").mkdir()
    (root / "app" / "docs" / "a.md").write_text("a")
    (root / "app" / "docs" / "keep.md").write_text("keep")
    (root / "app" / ".git").mkdir()
    (root / "app" / ".git" / "config").write_text("url = https://user:token@example.com/x")
    (root / "app" / ".dockerignore").write_text("*.log\ndocs\n!docs/keep.md\n")
    (root / "app" / "Dockerfile").write_text("FROM original\n")
    os.symlink("index.html", root / "app" / "home.html")
    os.symlink("/etc/passwd", root / "app" / "passwd")
    os.symlink("../../outside", root / "app" / "escape")
    os.symlink("docs", root / "app" / "docs-link")
    os.mkfifo(root / "app" / "pipe")
    (root / "outside").write_text("secret")
    return root / "app"


def _members(path):
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}, tar


def test_context_tar(tmp_path):
    ctx = _tree(tmp_path)
    out = tmp_path / "ctx.tar"
    info = make_context(
        ctx,
        out,
        dockerfile_path="Dockerfile",
        dockerfile_text="FROM mapped\n",
        max_bytes=10**6,
        extra_files={".berth/note": "x"},
    )
    members, _ = _members(out)
    assert sorted(members) == sorted(
        [
            ".berth",
            ".berth/note",
            ".dockerignore",
            "Dockerfile",
            "docs",
            "docs/keep.md",
            "docs-link",
            "home.html",
            "index.html",
            "run.sh",
        ]
    )
    assert members["home.html"].issym() and members["home.html"].linkname == "index.html"
    assert members["docs-link"].issym()
    assert members["run.sh"].mode == 0o755 and members["run.sh"].uid == 0 and members["run.sh"].mtime == 0
    with tarfile.open(out) as tar:
        assert tar.extractfile("Dockerfile").read() == b"FROM mapped\n"
        assert tar.extractfile("docs/keep.md").read() == b"keep"
    assert sorted(info.skipped) == [
        "escape -> ../../outside (points outside the build context)",
        "passwd -> /etc/passwd (points outside the build context)",
        "pipe (not a regular file, directory or symlink)",
    ]
    assert info.files == 6  # run.sh index.html .dockerignore keep.md + Dockerfile + note


def test_context_size_limit(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 5000)
    with pytest.raises(ContextError, match="larger than"):
        make_context(
            tmp_path, tmp_path.parent / "c.tar", dockerfile_path="Dockerfile", dockerfile_text="", max_bytes=1000
        )


def test_safe_dir_and_read_file_never_follow_symlinks(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "Dockerfile").write_text("FROM x\n")
    os.symlink("/etc", tmp_path / "etc-link")
    os.symlink("/etc/passwd", tmp_path / "real" / "Dockerfile.link")
    (tmp_path / "file").write_text("")
    assert safe_dir(tmp_path, "real") == tmp_path / "real"
    assert safe_dir(tmp_path, "") == tmp_path
    with pytest.raises(ContextError, match="symlink"):
        safe_dir(tmp_path, "etc-link")
    with pytest.raises(ContextError, match="does not exist"):
        safe_dir(tmp_path, "nope")
    with pytest.raises(ContextError, match="not a directory"):
        safe_dir(tmp_path, "file")
    assert read_file(tmp_path, "real/Dockerfile", 100) == "FROM x\n"
    assert read_file(tmp_path, "real/missing", 100) is None
    assert read_file(tmp_path, "etc-link/passwd", 100) is None  # the directory is a symlink
    with pytest.raises(ContextError, match="symlink"):
        read_file(tmp_path, "real/Dockerfile.link", 100)
    with pytest.raises(ContextError, match="larger than"):
        read_file(tmp_path, "real/Dockerfile", 3)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ContextError, match="not a regular file"):
        read_file(tmp_path, "fifo", 100)


def test_probe(tmp_path):
    (tmp_path / "package.json").write_text('{"scripts": {"start": "node x"}}')
    (tmp_path / "index.html").write_text("x")
    os.symlink("/etc/passwd", tmp_path / "Procfile")
    got = probe(tmp_path)
    assert got.names == frozenset({"package.json", "index.html", "Procfile"})
    assert got.texts == {"package.json": '{"scripts": {"start": "node x"}}'}  # the symlinked Procfile is not read
