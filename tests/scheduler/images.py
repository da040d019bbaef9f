"""The busybox base image of the scheduler's tests: the suite-wide one (tests/support/images.py),
made locally from busybox-static with ``docker import`` and cached by tag."""

from __future__ import annotations

from tests.support.images import busybox_image

__all__ = ["busybox_image"]
