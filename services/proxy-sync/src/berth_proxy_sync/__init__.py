"""Berth proxy-sync service."""
