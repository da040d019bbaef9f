"""The proxy-sync service's use cases: its routes, applied to Traefik's dynamic directory."""
