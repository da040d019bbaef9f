"""Pure logic of the proxy-sync service: no I/O."""
