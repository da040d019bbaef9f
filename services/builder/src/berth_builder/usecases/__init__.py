"""The builder's use cases: what it does for each command it consumes."""
