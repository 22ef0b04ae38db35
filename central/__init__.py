"""The central server: ingest, identity, tags and the HQ console."""

__version__ = "0.1.0"
