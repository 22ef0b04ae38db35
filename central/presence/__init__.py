"""Presence: footfall, capture rate, dwell and zone heat per store and hour, from the agents' events."""
