"""Berth notifier service."""
