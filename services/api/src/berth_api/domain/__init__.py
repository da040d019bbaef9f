"""Pure logic of the api service: no I/O."""
