"""Members domain: member-code keys and certificates, and member scans linked to sales."""
