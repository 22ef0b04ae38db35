"""Code shared by the edge agent and central: wire schema, crypto, ids, masking, settings."""
