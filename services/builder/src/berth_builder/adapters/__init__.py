"""Adapters of the builder service: database, docker, files."""
