"""Online intake at the hub: a dossier filed through the province's portal (or the hub's /submit
page) for its competent commune, which receives it with its next sync as `submitted`.

A filing is checked whole before anything is written: the dossier as a desk checks it
(`protocol.commands.validate_create`: same catalogue, same messages), the commune (in the
province's list, mergers followed, with a desk enrolled here), and every document it lists (a scan
this portal uploaded, or a paper document by name). Then the hub writes it as its own origin: the
create (channel `online`, received by `online`, a code of the hub's own agency prefix and per-day
counter, a tracking check), then one `attach` per document. The code's counter and the filing's
record commit with the create; a crash before the attachments leaves a dossier without some of
them, never a half-written event (the portal got no 201 and says so to the citizen).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

from aiohttp import web

from central_hub.portal import Portals
from central_hub.store import HubStore, check_commune
from protocol.attachments import MAX_ATTACHMENT, attach_draft
from protocol.calendar import local
from protocol.commands import NewDossier, create_draft, validate_create
from protocol.errors import NotFound, ValidationError
from protocol.events import uuid7
from protocol.merge import DossierState
from protocol.tracking import RAND_BYTES, display_check, make_check, public_status
from service.api import bodies, online_answers
from service.api.spec import operation
from service.blobs import sniff
from service.web import json_response
from service.web.body import read_upload

log = logging.getLogger(__name__)

ONLINE = "online"  # the receiving unit of a dossier filed at the hub
MAX_DOCUMENTS = 20


@dataclasses.dataclass(frozen=True, slots=True)
class Filing:
    """A filing that passed every check: nothing is left to refuse."""

    new: NewDossier
    commune: str
    documents: list[dict[str, Any]]


class Intake:
    """Online intake over the hub's store (its write path, as the hub's own origin)."""

    def __init__(self, store: HubStore, portals: Portals, agency: str) -> None:
        self.store, self.portals, self.agency = store, portals, agency

    async def enrolled(self) -> dict[str, str]:
        """The communes that can receive dossiers now (a desk enrolled, not revoked, and not
        merged into another), code → name."""
        async with self.store.reader.execute(
                "SELECT DISTINCT n.commune, c.name FROM nodes n LEFT JOIN communes c "
                "ON c.code=n.commune WHERE n.revoked_at IS NULL") as cur:
            rows = await cur.fetchall()
        today, listed = self.store.dossiers.today(), self.store.dossiers.communes
        out = {}
        for code, name in rows:
            if listed.resolve(code, today) == code:
                unit = listed.get(code)
                out[str(code)] = unit.name if unit is not None else str(name or code)
        return dict(sorted(out.items(), key=lambda kv: kv[1]))

    async def competent(self, raw: Any) -> str:
        """The commune a filing for `raw` goes to; ValidationError naming it if none can."""
        code = check_commune(raw if isinstance(raw, str) else "")
        listed, today = self.store.dossiers.communes, self.store.dossiers.today()
        unit = listed.resolve(code, today)
        if unit in await self.enrolled():
            return unit
        known = listed.get(code) is not None
        if not known:
            async with self.store.reader.execute(
                    "SELECT 1 FROM communes WHERE code=?", (code,)) as cur:
                known = await cur.fetchone() is not None
        if not known:
            raise ValidationError(f"commune {code} is not a commune of this province",
                                  field="commune")
        shown = code if unit == code else f"{code} (now {unit})"
        raise ValidationError(f"commune {shown} {listed.name_of(unit)} has no desk enrolled at "
                              "this hub: it cannot receive dossiers yet", field="commune")

    async def _documents(self, raw: Any, portal: str) -> list[dict[str, Any]]:
        if not isinstance(raw, list) or len(raw) > MAX_DOCUMENTS:
            raise ValidationError(f"attachments must be a list of at most {MAX_DOCUMENTS}",
                                  field="attachments")
        probe = DossierState(id="00000000-0000-7000-8000-000000000000", header={})
        out = []
        for i, item in enumerate(raw):
            where = f"attachments[{i}]"
            info = dict(item) if isinstance(item, dict) else {}
            sha = info.get("sha256")
            if sha is not None:
                if not isinstance(sha, str) or not self.store.blobs.has(sha) or \
                        not await self.portals.may_use(portal, sha):
                    raise ValidationError(f"{where}.sha256 names no upload of this portal "
                                          "(POST /api/submissions/uploads first)",
                                          field=f"{where}.sha256")
                path = self.store.blobs.path(sha)
                with path.open("rb") as f:
                    head = f.read(16)
                info.update(mime=sniff(head), size=path.stat().st_size,
                            name=info.get("label") or "scan")
            try:
                attach_draft(info, probe)  # every rule of an attachment entry, before writing
            except ValidationError as exc:
                raise ValidationError(f"{where}: {exc.message}", field=where) from exc
            out.append(info)
        return out

    async def check(self, body: dict[str, Any], portal: str) -> Filing:
        """Every check of a filing; ValidationError (422) naming the field, nothing written."""
        if body.get("channel", ONLINE) != ONLINE:
            raise ValidationError("a dossier filed online has the channel online",
                                  field="channel")
        desk_only = ("refuse", "duplicates")  # a desk's refusal at the counter, its duplicates
        new = validate_create({**{k: v for k, v in body.items() if k not in desk_only},
                               "channel": ONLINE}, self.store.dossiers.catalogue, self.store.dossiers.today())
        commune = await self.competent(body.get("commune"))
        documents = await self._documents(body.get("attachments", []), portal)
        return Filing(new, commune, documents)

    async def file(self, body: dict[str, Any], *, portal: str, actor: str) -> dict[str, Any]:
        """Check and write a filing; its `{"id", "code", "tracking"}`."""
        filing = await self.check(body, portal)
        store = self.store
        now = store.now_ms()
        dossier_id = uuid7(now, os.urandom(10))
        track = make_check(os.urandom(RAND_BYTES))

        async def prepare() -> Any:
            code = await self._next_code(now)
            await store.conn.execute(
                "INSERT INTO submissions(dossier, portal, code, commune, at) VALUES (?,?,?,?,?)",
                (dossier_id, portal, code, filing.commune, now))
            return create_draft(filing.new, commune=filing.commune, code=code, received_ms=now,
                                calendar=store.dossiers.calendar, status="submitted", track=track,
                                received_by=ONLINE)

        state = await store.dossiers.write_new(dossier_id, actor, prepare, filing.commune)
        for info in filing.documents:
            await store.dossiers.attach(dossier_id, info, actor)
        code = str((state.header or {}).get("code"))
        log.info("filed online: %s for commune %s by %s", code, filing.commune, portal)
        return {"id": dossier_id, "code": code, "tracking": display_check(track)}

    async def _next_code(self, now_ms: int) -> str:
        """The hub's next code of the day, counted in the create's transaction (a number is
        never reused: it commits with the create or not at all; on PostgreSQL the hub's chain
        lock, held by every hub write, keeps two processes from counting at once)."""
        day = local(now_ms).strftime("%y%m%d")
        conn = self.store.conn
        await conn.execute("INSERT INTO submission_codes(day, n) VALUES (?, 1) "
                           "ON CONFLICT(day) DO UPDATE SET n=submission_codes.n+1", (day,))
        async with conn.execute("SELECT n FROM submission_codes WHERE day=?", (day,)) as cur:
            row = await cur.fetchone()
        assert row is not None
        return f"{self.agency}-{day}-{int(row[0]):04d}"

    async def status(self, dossier_id: str, portal: str) -> dict[str, Any]:
        """A filing as the portal that made it sees it; NotFound for anyone else's."""
        if await self.portals.filed_by(dossier_id) != portal:
            raise NotFound("no filing of this portal has that id")
        state = await self.store.dossiers.load_state(dossier_id, committed=True)
        if state is None or state.header is None:
            raise NotFound("no filing of this portal has that id")
        shown = public_status(state, await self.store.dossiers.history(dossier_id))
        return {"id": dossier_id, "commune": state.header.get("commune"), **shown}


def routes(intake: Intake) -> list[web.RouteDef]:
    """POST /api/submissions, POST /api/submissions/uploads, GET /api/submissions/{id}: the
    portal's key only (the auth middleware lets these through to check it here)."""
    portals = intake.portals

    @operation("File a dossier online (the province portal's key)", tag="portal",
               body=bodies.Submission, answer=online_answers.Submitted, status=201)
    async def submit(request: web.Request, body: bodies.Submission) -> web.Response:
        """Validated like a dossier received at a desk (the same catalogue and messages), plus
        the competent `commune` (422 naming an unknown one, or one with no desk enrolled) and
        the documents (scans uploaded first); invalid input stores nothing. The dossier is
        `submitted` until the commune's desk accepts, refuses or asks for a supplement."""
        portal = await portals.of(request)
        answer = await intake.file(bodies.as_dict(body), portal=portal, actor=f"portal:{portal}")
        return json_response(answer, status=201)

    @operation("Upload a scan for a filing (multipart: file)", tag="portal", form=bodies.Upload,
               answer=online_answers.Uploaded, status=201)
    async def upload(request: web.Request) -> web.Response:
        """A PDF, JPEG or PNG (checked by its first bytes), at most 20 MB; list it in the
        submission's attachments by its sha256."""
        portal = await portals.of(request)
        if not request.content_type.startswith("multipart/"):
            raise ValidationError("send the file as multipart/form-data", field="file")
        data, _, _ = await read_upload(request, MAX_ATTACHMENT)
        mime = sniff(data[:16]) if data else None
        if mime is None:
            raise ValidationError("send one PDF, JPEG or PNG file (field 'file')", field="file")
        sha = await intake.store.blobs.put(data)
        await portals.uploaded(portal, sha)
        return json_response({"sha256": sha, "size": len(data), "mime": mime}, status=201)

    @operation("A filing's status (the portal that filed it)", tag="portal",
               answer=online_answers.SubmissionStatus)
    async def status(request: web.Request) -> web.Response:
        """What tracking shows, for the dossiers this portal filed (404 for any other)."""
        portal = await portals.of(request)
        return json_response(await intake.status(request.match_info["id"], portal))

    return [web.post("/api/submissions", submit),
            web.post("/api/submissions/uploads", upload),
            web.get("/api/submissions/{id}", status)]
