"""Developer tools that span both deployables (the demo, the settings reference)."""
