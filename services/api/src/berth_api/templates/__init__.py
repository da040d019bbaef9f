"""Berth's template catalogue: one ``<slug>.yml`` per template (package data, read by the catalogue adapter)."""
