"""The tests' base images (tests/support/images.py): one the engine has is taken at once, even while another
process holds the machine-wide lock of the base images' maker (a debootstrap build holds it for a minute or more)."""

from __future__ import annotations

import fcntl
import tempfile
import threading
from pathlib import Path

import pytest

from berth_cli import baseimages
from tests.support import images

pytestmark = pytest.mark.docker


def test_a_base_image_the_engine_has_is_taken_while_another_maker_holds_the_lock() -> None:
    tag = images.busybox_image()  # made now if this machine has not got it yet (the lock is free here)
    assert baseimages.image_exists(tag)
    found: list[str] = []
    lock_path = Path(tempfile.gettempdir()) / "berth-base-images.lock"  # ensure_base_images' lock
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another maker is building an image
        try:
            asking = threading.Thread(target=lambda: found.append(images.busybox_image.__wrapped__()), daemon=True)
            asking.start()
            asking.join(20)
            assert found == [tag], "the test waited for the base images' lock although its image is there"
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    asking.join(60)
