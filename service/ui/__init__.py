"""Shared staff web UI plumbing for both servers: templates, messages, CSRF, headers, static files.

The edge's commune desk (`edge_node/ui/`) and the hub's operator dashboard build their pages on it:
one Jinja environment per app, message catalogues in Vietnamese and English, a session-cookie login
with CSRF-checked forms, security headers, and static files served locally with cache headers.
"""
