"""The edge database's tables and their migrations (service/migrations.py runs them at open)."""

from __future__ import annotations

import logging

from service import accounts, clock_flags, dossier_store, reports, search_text
from service.migrations import Migration, Plan

log = logging.getLogger(__name__)

# Version 1 of the edge's own tables (the log's are service/dossier_store.py's): never edit it, add
# a migration to MIGRATIONS.
EDGE_SCHEMA = """
CREATE TABLE IF NOT EXISTS code_counter (day TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs (
    sha256 TEXT PRIMARY KEY, size INTEGER NOT NULL, direction TEXT NOT NULL, done INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (
    seq INTEGER PRIMARY KEY, code TEXT NOT NULL, reason TEXT NOT NULL, at INTEGER NOT NULL
);
"""

MIGRATIONS = Plan("edge", (
    Migration(1, "the first release's tables",
              (dossier_store.SCHEMA, EDGE_SCHEMA, accounts.SCHEMA)),
    Migration(2, "a session's last activity in sessions", (accounts.SESSION_ACTIVITY,)),
    Migration(3, "users' full name and position", (accounts.STAFF_NAMES,)),
    Migration(4, "the clock-check flag's suspects and dossiers", (clock_flags.SCHEMA,)),
    Migration(5, "dossiers by their last change, for the period reports",
              (reports.UPDATED_INDEX,)),
    Migration(6, "the search text holds searchable form values and the phone",
              (search_text.refill_search_text,)),
))
