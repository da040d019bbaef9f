"""Adapters of the api service: database, docker, files."""
