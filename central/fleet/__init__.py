"""Fleet: enrolled store PCs, enrollment tokens, and what central knows of each agent."""
