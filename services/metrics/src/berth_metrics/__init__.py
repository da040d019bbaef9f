"""Berth metrics service."""
