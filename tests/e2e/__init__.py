"""End-to-end tests of the local platform (berth up/down/status), the compose file and the CLI layout."""
