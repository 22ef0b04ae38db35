"""Customers: purchases and the read side of customer profiles."""
