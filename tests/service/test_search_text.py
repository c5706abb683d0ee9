"""Migration 6 (issue 18 item 8): rows written before the search text held the searchable form
values and the phone get them, so a dossier received last year is found by the child's name."""

from __future__ import annotations

import sqlite3
from contextlib import closing

from edge_node.schema import MIGRATIONS as EDGE
from protocol.text import search_key
from service.search_text import refill_search_text
from tests.harness import Net, birth


async def test_rows_from_before_get_the_form_values_and_the_phone(net: Net) -> None:
    edge = await net.add_edge("02245", "Xã Côn Lôn")
    status, made = await edge.api.post("/api/dossiers", birth(child_full_name="Lò Văn Bình"))
    assert status == 201, made
    assert any(m.steps == (refill_search_text,) for m in EDGE.migrations)
    db = edge.data / "edge.db"
    with closing(sqlite3.connect(db)) as conn:  # as the previous release wrote it
        conn.execute("UPDATE dossiers SET name_fold=?", (search_key("Nguyễn Văn An"),))
        conn.commit()
    status, found = await edge.api.get("/api/dossiers?q=lo+van+binh")
    assert status == 200 and found["items"] == []
    await refill_search_text(edge.store.conn)
    await edge.store.conn.commit()
    with closing(sqlite3.connect(db)) as conn:
        [(text,)] = conn.execute("SELECT name_fold FROM dossiers").fetchall()
    assert text == "nguyen van an|lo van binh|2026-11-20|0912345678"
    status, found = await edge.api.get("/api/dossiers?q=lo+van+binh")
    assert [d["id"] for d in found["items"]] == [made["id"]]
