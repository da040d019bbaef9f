"""Berth shared library: settings, logging, tracing, the bus, the message catalogue and the db base."""

__version__ = "0.1.0"
