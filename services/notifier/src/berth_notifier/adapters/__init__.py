"""Adapters of the notifier service: database, docker, files."""
