"""Identity: turning identifiers seen in events into one customer each, explainably and reversibly."""
