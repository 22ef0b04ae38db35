"""The edge agent: captures what happens at the till and in the store, and syncs it to central."""

__version__ = "0.1.0"
