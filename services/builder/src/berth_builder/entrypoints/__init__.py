"""Entry points of the builder service: bus consumers (and HTTP routes), thin."""
