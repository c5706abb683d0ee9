"""The async shell shared by the edge node and the hub: SQLite plumbing, accounts, HTTP helpers."""
