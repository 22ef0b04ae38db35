"""Customers' requests under PIPL: a copy of what central holds about a person (Art. 45), and erasure (Art. 47)."""
