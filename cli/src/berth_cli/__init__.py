"""The berth command: local platform supervisor, status, bus spec."""
