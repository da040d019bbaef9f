"""A build or an image transfer that met a full disk says so first, in words a person acts on, with the
engine's own words kept (``berth_common.docker.disk_full``, ``domain/progress.build_failure_reason``); a
build or an image that does not fit in the free space of the data root (``berth_common.docker.data_root``)
says both sizes."""

from __future__ import annotations

import io
import tarfile

from berth_builder.domain.progress import build_failure_reason, no_room_reason
from berth_common.docker import data_root, disk_full

STORE = "mkdir /var/lib/docker/tmp/docker-builder123: no space left on device"


def test_a_build_that_met_a_full_disk_names_it():
    reason = build_failure_reason(f"the Docker engine could not store the build context: {STORE}", ["#1 ..."], [])
    assert reason == (
        "the disk of the build server is full (Docker's data root): free space there (docker system prune, a "
        f"larger disk) and deploy again. Docker said: the Docker engine could not store the build context: {STORE}"
        "\nLast lines:\n#1 ..."
    )


def test_a_step_that_filled_the_disk_names_it_from_its_output():
    tail = ["#5 [2/2] RUN dd if=/dev/zero of=/big", "#5 dd: error writing '/big': No space left on device"]
    reason = build_failure_reason("executor failed running [/bin/sh -c dd]: exit code: 1", tail, [])
    assert reason.startswith(
        "a build step ran out of disk space on the build server (Docker's data root filled up while it ran): "
        "free space there (docker system prune, a larger disk) or make the step write less, and deploy again. "
        "Docker said: executor failed running [/bin/sh -c dd]: exit code: 1\nLast lines:\n#5 [2/2] RUN"
    ), reason
    other = build_failure_reason("exit code: 1", ["#5 [2/2] RUN false"], [])
    assert other.startswith("a build step failed: fix it and deploy again.")


def test_the_full_disk_words_are_recognised_and_other_words_kept():
    assert disk_full.says_full("write /x: No space left on device") and not disk_full.says_full("exit code: 3")
    assert disk_full.explained(STORE, "server 6292e648") == (
        f"the disk of server 6292e648 is full (Docker's data root): {STORE}"
    )
    assert disk_full.explained("port is already allocated", "server 6292e648") == "port is already allocated"


def test_the_probe_archive_is_one_file_and_no_image():
    with tarfile.open(fileobj=io.BytesIO(disk_full.probe_tar())) as tar:
        members = tar.getmembers()
    assert [(m.name, m.size, m.isfile()) for m in members] == [(disk_full.PROBE_NAME, disk_full.PROBE_BYTES, True)]


def test_an_image_larger_than_the_free_space_is_named_with_both_sizes():
    mib = disk_full.MIB
    assert disk_full.no_room(40 * mib + 1, 19 * mib + mib // 2) == "needs 41 MiB, 19 MiB free"
    assert disk_full.no_room(19 * mib, 19 * mib) is None  # it fits
    assert disk_full.no_room(25 * mib, 11 * mib, at_least=True) == "needs at least 25 MiB, 11 MiB free"
    assert disk_full.no_room(None, 3) is None and disk_full.no_room(3, None) is None  # unknown: nothing said
    broke = "the target engine refused the image: broken pipe"
    assert disk_full.without_room(broke, "server 6292e648", "app:1", 40 * mib, 19 * mib) == (
        "the disk of server 6292e648 has no room for image app:1 (Docker's data root): it needs 40 MiB, 19 MiB "
        f"free: {broke}"
    )
    # it fits: the failure is something else, kept as it is (or named as a full disk by the engine's words)
    assert disk_full.without_room(broke, "server 6292e648", "app:1", 10 * mib, 19 * mib) == broke
    assert disk_full.without_room(STORE, "server 6292e648", "app:1", None, None).startswith(
        "the disk of server 6292e648 is full (Docker's data root): mkdir"
    )


def test_the_data_root_helper_runs_df_on_the_data_root_alone_read_only():
    assert data_root.helper_body("/srv/docker data") == {
        "Image": "berth/busybox:1",
        "Cmd": ["df", "-P", "-k", "/data-root"],
        "Entrypoint": [],
        "User": "0:0",
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": False,
        "NetworkDisabled": True,
        "Labels": {"berth.managed": "true", "berth.data-root-helper": "df"},
        "HostConfig": {
            "NetworkMode": "none",
            "AutoRemove": False,
            "Mounts": [
                {
                    "Type": "bind",
                    "Source": "/srv/docker data",
                    "Target": "/data-root",
                    "ReadOnly": True,
                    "BindOptions": {"NonRecursive": True},
                }
            ],
        },
    }
    out = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/loop3 119756 108000 11756 91% /data-root\n"
    assert data_root.parse_df(out) == 11756 * 1024 and data_root.df_sizes(out) == (119756 * 1024, 11756 * 1024)
    mib = disk_full.MIB
    assert data_root.same_file_system((128 * mib, 12 * mib), (128 * mib + 1000, 13 * mib))  # it moved a little
    assert not data_root.same_file_system((128 * mib, 12 * mib), (129 * mib, 12 * mib))  # another file system
    assert not data_root.same_file_system((128 * mib, 12 * mib), (128 * mib, 40 * mib))


def test_a_build_whose_context_cannot_fit_is_named_with_both_sizes():
    mib = disk_full.MIB
    assert no_room_reason(24 * mib + 1, 11 * mib + 5) == (
        "the disk of the build server has no room for this build (Docker's data root): its context alone needs at "
        "least 25 MiB, 11 MiB free: free space there (docker system prune, a larger disk) or leave files out of "
        "the context (.dockerignore), and deploy again."
    )
    assert no_room_reason(11 * mib, 11 * mib) is None and no_room_reason(24 * mib, None) is None
