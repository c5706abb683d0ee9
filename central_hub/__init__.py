"""The province side: sync endpoint, store, operator API and dashboard, enrollment, CLI."""
