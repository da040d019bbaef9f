"""Berth scheduler service."""
