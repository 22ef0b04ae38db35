"""Console accounts: users and their roles, password hashing, server-side sessions, login throttling."""
