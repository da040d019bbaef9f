"""Handlers of the notifier service: one async function per command or event it consumes."""

from __future__ import annotations

HANDLERS: dict[str, object] = {}
