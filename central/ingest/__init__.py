"""Ingest: signed batches from agents and other sources, stored exactly once."""
