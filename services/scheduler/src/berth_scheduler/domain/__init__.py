"""Pure logic of the scheduler service: no I/O."""
