"""Entry points of the proxy-sync service: bus consumers (and HTTP routes), thin."""
