"""Adapters of the metrics service: database, docker, files."""
