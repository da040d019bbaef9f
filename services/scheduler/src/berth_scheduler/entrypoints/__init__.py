"""Entry points of the scheduler service: bus consumers (and HTTP routes), thin."""
