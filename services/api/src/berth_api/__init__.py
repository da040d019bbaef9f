"""Berth api service."""
