"""Adapters of the scheduler service: database, docker, files."""
