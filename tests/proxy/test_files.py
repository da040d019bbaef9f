"""The dynamic-directory writer: atomic replace, delete by rename-away, names kept inside the directory."""

from __future__ import annotations

import os
import threading

import pytest

from berth_proxy_sync.adapters.files import DynamicDir, UnsafePathError
from berth_proxy_sync.domain.routes import MANAGED_MARKER, SENTINEL_FILE


@pytest.fixture
def dyn(tmp_path):
    d = DynamicDir(tmp_path / "dynamic")
    d.ensure()
    (d.directory / SENTINEL_FILE).write_text("sentinel")
    return d


def test_write_replaces_atomically_and_skips_identical_content(dyn):
    assert dyn.write("web-a.yml", MANAGED_MARKER + "one\n") is True
    ino = os.stat(dyn.directory / "web-a.yml").st_ino
    assert dyn.write("web-a.yml", MANAGED_MARKER + "one\n") is False
    assert os.stat(dyn.directory / "web-a.yml").st_ino == ino  # not rewritten: no Traefik reload
    assert dyn.write("web-a.yml", MANAGED_MARKER + "two\n") is True
    assert os.stat(dyn.directory / "web-a.yml").st_ino != ino  # a new inode renamed into place
    assert dyn.read("web-a.yml") == MANAGED_MARKER + "two\n"
    assert sorted(p.name for p in dyn.directory.iterdir()) == [SENTINEL_FILE, "web-a.yml"]


def test_a_reader_never_sees_a_partial_file(dyn):
    big_a, big_b = MANAGED_MARKER + "a" * 400_000, MANAGED_MARKER + "b" * 400_000
    dyn.write("web-a.yml", big_a)
    seen: set[int] = set()
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            text = (dyn.directory / "web-a.yml").read_text()
            seen.add(len(text))
            assert text in (big_a, big_b)

    t = threading.Thread(target=reader)
    t.start()
    for i in range(40):
        dyn.write("web-a.yml", big_a if i % 2 else big_b)
    stop.set()
    t.join()
    assert seen == {len(big_a)}


def test_temp_names_never_end_in_yml(dyn, monkeypatch):
    made = []
    real_rename = os.rename

    def spy(src, dst):
        made.append((os.path.basename(src), os.path.basename(dst)))
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", spy)
    dyn.write("web-a.yml", "x")
    dyn.delete("web-a.yml")
    (tmp_src, final), (deleted, away) = made
    assert final == deleted == "web-a.yml"
    for temp in (tmp_src, away):
        assert temp.startswith(".berth-web-a.yml.") and not temp.endswith((".yml", ".yaml", ".toml"))


def test_delete_renames_away(dyn):
    dyn.write("web-a.yml", "x")
    assert dyn.delete("web-a.yml") is True
    assert dyn.delete("web-a.yml") is False
    assert sorted(p.name for p in dyn.directory.iterdir()) == [SENTINEL_FILE]


@pytest.mark.parametrize(
    "name",
    ["../x.yml", "a/b.yml", "/etc/passwd", "x.yaml", "x.yml.tmp", ".hidden.yml", "A.yml", SENTINEL_FILE, "x", ""],
)
def test_unsafe_names_are_refused(dyn, name):
    with pytest.raises(UnsafePathError):
        dyn.write(name, "x")
    with pytest.raises(UnsafePathError):
        dyn.delete(name)


def test_symlink_out_of_the_directory_is_refused(dyn, tmp_path):
    outside = tmp_path / "outside.yml"
    outside.write_text("keep")
    (dyn.directory / "web-a.yml").symlink_to(outside)
    with pytest.raises(UnsafePathError):
        dyn.write("web-a.yml", "x")
    assert outside.read_text() == "keep"


def test_managed_files_and_temp_cleanup(dyn):
    dyn.write("web-a.yml", MANAGED_MARKER + "x")
    (dyn.directory / "operator-tls.yml").write_text("tls: {}\n")
    (dyn.directory / ".berth-web-b.yml.tmp-123").write_text("half")
    assert dyn.managed_files() == ["web-a.yml"]
    assert dyn.clean_temp_files() == 1
    assert sorted(p.name for p in dyn.directory.iterdir()) == [SENTINEL_FILE, "operator-tls.yml", "web-a.yml"]


def test_a_route_change_is_flushed_after_the_rename_not_before(dyn, monkeypatch):
    """``durable=False`` renames first (Traefik may read it at once) and leaves the fsyncs to ``sync``."""
    calls: list[str] = []
    real_fsync, real_rename = os.fsync, os.rename
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "rename", lambda a, b: (calls.append("rename"), real_rename(a, b))[1])
    assert dyn.write("web-a.yml", "one", durable=False) is True
    assert calls == ["rename"] and dyn.read("web-a.yml") == "one"
    dyn.sync("web-a.yml")
    assert calls == ["rename", "fsync", "fsync"]  # the file, then the directory
    calls.clear()
    assert dyn.delete("web-a.yml", durable=False) is True
    assert calls == ["rename"]
    dyn.sync("web-a.yml")  # gone: only the directory
    assert calls == ["rename", "fsync"]
    calls.clear()
    dyn.write("web-b.yml", "two")  # the default stays durable before the rename
    assert calls == ["fsync", "rename", "fsync"]
