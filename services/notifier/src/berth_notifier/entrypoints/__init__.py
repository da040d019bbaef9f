"""Entry points of the notifier service: bus consumers (and HTTP routes), thin."""
