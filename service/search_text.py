"""The folded text a dossier is found by (`dossiers.name_fold`): its applicant's name, the values of
its form's searchable fields (the catalogue's `searchable`) and its phone; and the migration step
that writes it for rows stored before it held more than the name."""

from __future__ import annotations

import logging
from typing import Any

from protocol import codec
from protocol.catalogue import DEFAULT_CATALOGUE, Catalogue, parse_catalogue
from protocol.merge import DossierState, from_plain
from protocol.text import search_text

log = logging.getLogger(__name__)


def search_text_of(state: DossierState, catalogue: Catalogue) -> str:
    """A dossier's search text: its name, searchable form values and phone, folded."""
    fields = catalogue.searchable((state.header or {}).get("procedure"))
    return search_text(state.value("applicant.full_name") or "",
                       [state.value(f"fields.{f}") for f in fields],
                       state.value("applicant.phone"))


async def refill_search_text(conn: Any) -> None:
    """Migration step: the search text of every row, now with its searchable form values and
    phone (rows written before held the name alone), by the catalogue the database holds."""
    catalogue = DEFAULT_CATALOGUE
    async with conn.execute("SELECT version, data FROM refdata WHERE kind='procedures'") as cur:
        row = await cur.fetchone()
    if row is not None:
        catalogue = parse_catalogue({**codec.unpack(row[1]), "version": int(row[0])})
    last = ""
    while True:  # in slices, by id: a national hub does not fit in one fetch
        async with conn.execute("SELECT id, state FROM dossiers WHERE id > ? ORDER BY id "
                                "LIMIT 2000", (last,)) as cur:
            rows = list(await cur.fetchall())
        if not rows:
            return
        last = rows[-1][0]
        await conn.executemany("UPDATE dossiers SET name_fold=? WHERE id=?", [
            (search_text_of(from_plain(codec.unpack_stored(blob)), catalogue), dossier)
            for dossier, blob in rows])
