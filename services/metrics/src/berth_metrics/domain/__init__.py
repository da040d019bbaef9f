"""Pure logic of the metrics service: no I/O."""
