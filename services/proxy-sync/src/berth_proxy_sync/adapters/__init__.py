"""Adapters of the proxy-sync service: database, docker, files."""
