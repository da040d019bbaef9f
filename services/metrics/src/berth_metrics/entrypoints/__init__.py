"""Entry points of the metrics service: bus consumers (and HTTP routes), thin."""
