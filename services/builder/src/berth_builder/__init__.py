"""Berth builder service."""
