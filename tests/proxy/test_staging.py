"""Temporary files of the dynamic-directory writer live next to the watched directory, never in it."""

from __future__ import annotations

import os
import threading

from berth_proxy_sync.adapters.files import STAGING_SUFFIX, DynamicDir
from berth_proxy_sync.domain.routes import MANAGED_MARKER, SENTINEL_FILE


def make(tmp_path) -> DynamicDir:
    d = DynamicDir(tmp_path / "dynamic")
    d.ensure()
    (d.directory / SENTINEL_FILE).write_text("sentinel")
    return d


def test_temp_files_are_written_beside_the_watched_directory(tmp_path, monkeypatch):
    dyn = make(tmp_path)
    renames = []
    real_rename = os.rename

    def spy(src, dst):
        renames.append((os.path.dirname(src), os.path.dirname(dst)))
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", spy)
    dyn.write("web-a.yml", MANAGED_MARKER + "one\n")
    dyn.delete("web-a.yml")
    staging = str(tmp_path / f".dynamic{STAGING_SUFFIX}")
    dynamic = str(dyn.directory.resolve())
    assert renames == [(staging, dynamic), (dynamic, staging)]
    assert os.stat(staging).st_dev == os.stat(dynamic).st_dev
    assert os.listdir(staging) == []  # the deleted file was unlinked there


def test_the_watched_directory_only_ever_shows_route_files(tmp_path):
    dyn = make(tmp_path)
    seen: set[tuple[str, ...]] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.add(tuple(sorted(os.listdir(dyn.directory))))

    t = threading.Thread(target=watch)
    t.start()
    for i in range(150):
        dyn.write("web-a.yml", MANAGED_MARKER + f"{i}\n" * 2000)
        if i % 10 == 0:
            dyn.delete("web-a.yml")
    stop.set()
    t.join()
    assert seen <= {(SENTINEL_FILE,), (SENTINEL_FILE, "web-a.yml")}
    assert (SENTINEL_FILE, "web-a.yml") in seen


def test_without_a_staging_directory_temp_files_stay_in_the_directory(tmp_path, monkeypatch):
    (tmp_path / f".dynamic{STAGING_SUFFIX}").write_text("not a directory")  # mkdir fails: fall back
    dyn = make(tmp_path)
    sources = []
    real_rename = os.rename

    def spy(src, dst):
        sources.append(os.path.dirname(src))
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", spy)
    assert dyn.staging == dyn.directory.resolve()
    assert dyn.write("web-a.yml", MANAGED_MARKER + "x\n") is True
    assert sources == [str(dyn.directory.resolve())]
    assert dyn.read("web-a.yml") == MANAGED_MARKER + "x\n"
    assert sorted(os.listdir(dyn.directory)) == [SENTINEL_FILE, "web-a.yml"]


def test_leftovers_are_cleaned_in_both_places(tmp_path):
    dyn = make(tmp_path)
    (dyn.staging / ".berth-web-a.yml.tmp-123").write_text("half")
    (dyn.directory / ".berth-web-b.yml.tmp-456").write_text("half, from an older version")
    (dyn.staging / "keep.txt").write_text("not ours")
    assert dyn.clean_temp_files() == 2
    assert os.listdir(dyn.staging) == ["keep.txt"]
    assert os.listdir(dyn.directory) == [SENTINEL_FILE]
