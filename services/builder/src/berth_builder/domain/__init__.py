"""Pure logic of the builder service: no I/O."""
