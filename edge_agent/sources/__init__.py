"""Inputs: one module per device kind, each reading on a thread of its own and emitting records."""
