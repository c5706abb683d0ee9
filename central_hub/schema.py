"""The hub database's own tables, beside the log's (service/schema.py), and the migrations that
bring a database to this code's version (service/migrations.py runs them at open): communes and
nodes, their exchanges, enrollment, the chain head of every origin, who may fetch which blob,
quarantined events, and the trust records (certificates, security alerts).
"""

from __future__ import annotations

import logging

from central_hub.feed import FEED_SCHEMA, backfill_feed
from central_hub.mergers import MERGERS_SCHEMA
from central_hub.nodes.fleet import FLEET_SCHEMA
from central_hub.portal import PORTAL_SCHEMA
from central_hub.replace import REPLACE_SCHEMA
from central_hub.tracking import TRACKING_SCHEMA, backfill_tracking
from service import accounts, clock_flags, reports, search_text
from service.migrations import Migration, Plan
from service.schema import SCHEMA as LOG_SCHEMA

log = logging.getLogger(__name__)

# Version 1 of the hub's own tables (the log's are service/schema.py's, the fleet's
# central_hub/nodes/fleet.py's): never edit them, add a migration to MIGRATIONS.
HUB_SCHEMA = """
CREATE TABLE IF NOT EXISTS communes (code TEXT PRIMARY KEY, name TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS nodes (
    node TEXT PRIMARY KEY,
    commune TEXT NOT NULL,
    credential_hash BLOB NOT NULL UNIQUE,
    enrolled_at INTEGER NOT NULL,
    revoked_at INTEGER,
    last_seen_at INTEGER,
    last_success_at INTEGER,
    app_version TEXT,
    protocol INTEGER,
    stats TEXT NOT NULL DEFAULT '{}',
    last_error TEXT,
    sessions_ok INTEGER NOT NULL DEFAULT 0,
    sessions_failed INTEGER NOT NULL DEFAULT 0,
    bytes_in INTEGER NOT NULL DEFAULT 0,
    bytes_out INTEGER NOT NULL DEFAULT 0,
    clock_ahead_events INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS node_sessions (
    node TEXT NOT NULL,
    at INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    error TEXT,
    bytes_in INTEGER NOT NULL,
    bytes_out INTEGER NOT NULL,
    events_in INTEGER NOT NULL,
    events_out INTEGER NOT NULL,
    pending_events INTEGER,
    oldest_pending_age_s INTEGER,
    clock_offset_ms INTEGER,
    duration_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS node_sessions_node_at ON node_sessions(node, at);
CREATE TABLE IF NOT EXISTS enroll_tokens (
    token_hash BLOB PRIMARY KEY,
    commune TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    node TEXT
);
CREATE TABLE IF NOT EXISTS origins (
    origin TEXT PRIMARY KEY, last_seq INTEGER NOT NULL, last_hash BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blob_refs (
    sha256 TEXT NOT NULL, commune TEXT NOT NULL, PRIMARY KEY (sha256, commune)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quarantine (
    origin TEXT NOT NULL, seq INTEGER NOT NULL, hash BLOB NOT NULL, body BLOB NOT NULL,
    code TEXT NOT NULL, reason TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (origin, seq)
);
"""
TRUST_SCHEMA = """
CREATE TABLE IF NOT EXISTS node_certs (
    serial TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    first_used_at INTEGER,
    revoked_at INTEGER,
    reason TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS node_certs_node ON node_certs(node, issued_at);
CREATE TABLE IF NOT EXISTS security_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    node TEXT,
    origin TEXT,
    seq INTEGER,
    detail TEXT NOT NULL
);
"""

MIGRATIONS = Plan("hub", (
    Migration(1, "the first release's tables",
              (LOG_SCHEMA, HUB_SCHEMA, TRUST_SCHEMA, FLEET_SCHEMA, accounts.SCHEMA)),
    Migration(2, "a session's last activity in sessions", (accounts.SESSION_ACTIVITY,)),
    Migration(3, "users' full name and position", (accounts.STAFF_NAMES,)),
    Migration(4, "the clock-check flag's suspects and dossiers", (clock_flags.SCHEMA,)),
    Migration(5, "dossiers by their last change, for the period reports",
              (reports.UPDATED_INDEX,)),
    Migration(6, "the search text holds searchable form values and the phone",
              (search_text.refill_search_text,)),
    Migration(7, "online intake: portal keys, filings and their codes; tracking checks",
              (PORTAL_SCHEMA, TRACKING_SCHEMA, backfill_tracking)),
    Migration(8, "replaced nodes: the old node, its token, its successor", (REPLACE_SCHEMA,)),
    Migration(9, "commune mergers the hub carried out", (MERGERS_SCHEMA,)),
    Migration(10, "scope sets: dossiers' units and the delivery feed, backfilled at the log's "
              "positions", (FEED_SCHEMA, backfill_feed)),
))
