"""The commune side: SQLite store, staff web UI and JSON API, background sync client, CLI."""
