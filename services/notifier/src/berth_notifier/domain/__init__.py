"""Pure logic of the notifier service: no I/O."""
