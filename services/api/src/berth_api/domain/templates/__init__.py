"""Templates: Berth's own template format (compose text, metadata, variables), its variable grammar, the
rendering of a template into a compose file and the importers of Coolify templates and Dokploy blueprints.
Pure: no I/O; randomness and time come from an injected source."""
