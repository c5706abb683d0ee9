"""The tables both sides keep: meta, reference data, the event log and its fold (`dossiers`).

`events` is the log: one row per event, `pos` its position in this replica's log (commit order),
`body` its canonical bytes. `dossiers` is materialized from it (`dossier_row`: the folded state and
the columns the lists filter and sort on) and always rebuildable from it.
"""

from __future__ import annotations

import logging
from typing import Any

from protocol import codec
from protocol.catalogue import DEFAULT_CATALOGUE, Catalogue
from protocol.merge import DossierState, to_plain
from service.search_text import search_text_of

log = logging.getLogger(__name__)

# Version 1 of the log's tables, on both sides (service/migrations.py): never edit it, add a
# migration to the plans of edge_node/schema.py and central_hub/schema.py.
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refdata (
    kind TEXT PRIMARY KEY, version INTEGER NOT NULL, data BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    pos INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hlc INTEGER NOT NULL,
    dossier TEXT NOT NULL,
    commune TEXT NOT NULL,
    kind TEXT NOT NULL,
    hash BLOB NOT NULL,
    body BLOB NOT NULL,
    UNIQUE (origin, seq)
);
CREATE INDEX IF NOT EXISTS events_dossier ON events(dossier);
CREATE INDEX IF NOT EXISTS events_commune_pos ON events(commune, pos);
CREATE TABLE IF NOT EXISTS dossiers (
    id TEXT PRIMARY KEY,
    commune TEXT NOT NULL,
    code TEXT,
    procedure TEXT,
    status TEXT,
    name TEXT,
    name_fold TEXT,
    citizen_id TEXT,
    received_at INTEGER,
    due_at INTEGER,
    conflicts INTEGER NOT NULL DEFAULT 0,
    updated_hlc INTEGER NOT NULL,
    state BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS dossiers_order ON dossiers(received_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS dossiers_code ON dossiers(code);
CREATE INDEX IF NOT EXISTS dossiers_citizen ON dossiers(citizen_id);
CREATE INDEX IF NOT EXISTS dossiers_status ON dossiers(status, received_at DESC);
CREATE INDEX IF NOT EXISTS dossiers_commune ON dossiers(commune, received_at DESC);
CREATE INDEX IF NOT EXISTS dossiers_conflicts ON dossiers(conflicts) WHERE conflicts > 0;
CREATE INDEX IF NOT EXISTS dossiers_due ON dossiers(status, due_at);
CREATE INDEX IF NOT EXISTS dossiers_procedure ON dossiers(procedure, received_at DESC);
-- Search by name is a substring match: it walks this index newest first and reads no table row
-- until a page is full (every filter column is here too), ~35 ms for 100,000 dossiers at worst.
CREATE INDEX IF NOT EXISTS dossiers_search ON dossiers(received_at DESC, id DESC, name_fold, code,
    citizen_id, status, procedure, commune, due_at, conflicts);
"""
UPSERT_DOSSIER = (
    "INSERT INTO dossiers(id, commune, code, procedure, status, name, name_fold, citizen_id, "
    "received_at, due_at, conflicts, updated_hlc, state) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT(id) DO UPDATE SET commune=excluded.commune, code=excluded.code, "
    "procedure=excluded.procedure, status=excluded.status, name=excluded.name, "
    "name_fold=excluded.name_fold, citizen_id=excluded.citizen_id, "
    "received_at=excluded.received_at, due_at=excluded.due_at, conflicts=excluded.conflicts, "
    "updated_hlc=excluded.updated_hlc, state=excluded.state")
DOSSIER_COLUMNS = ("id, commune, code, procedure, status, name, name_fold, citizen_id, "
                   "received_at, due_at, conflicts, updated_hlc, state")


def dossier_row(state: DossierState, catalogue: Catalogue = DEFAULT_CATALOGUE
                ) -> tuple[Any, ...]:
    """The `dossiers` row for a state (commune … state blob); `name_fold` is its search text
    (`service/search_text.py`, with the catalogue's searchable fields of its procedure)."""
    header = state.header or {}
    name = state.value("applicant.full_name") or ""
    due = state.value("due_at")
    return (
        state.id,
        state.value("commune") or header.get("commune") or "",  # competent now (a transfer)
        header.get("code"),
        header.get("procedure"),
        state.value("status"),
        name,
        search_text_of(state, catalogue),
        state.value("applicant.citizen_id"),
        header.get("received_at"),
        due if isinstance(due, int) else None,
        len(state.conflicts()),
        state.last_hlc,
        codec.pack(to_plain(state)),
    )
