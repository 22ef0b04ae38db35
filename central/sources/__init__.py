"""Sources beyond the agents: online systems with API keys, backfills, legacy imports, the identity export."""
