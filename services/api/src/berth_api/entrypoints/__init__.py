"""Entry points of the api service: bus consumers (and HTTP routes), thin."""
