"""Fleet load generator: 1,000 or 3,321 communes speaking the real sync protocol to one hub.

    .venv/bin/python bench/fleet --communes 1000 --scenario burst
    .venv/bin/python bench/fleet --communes 3321 --scenario burst
    .venv/bin/python bench/fleet --scenario ingest [--ingest-communes 50 --ingest-events 2000]
    .venv/bin/python bench/fleet --communes 1000 --scenario day [--day-seconds 120]
    options: --db URL (sqlite | postgresql://…) --workers N --spread S --json --profile FILE
             --data DIR --keep --seed N --hub-set KEY=VALUE (hub.toml, repeatable);
             `--scenario burst,ingest` runs both, each on a fresh hub
    (`python -m bench.fleet …` is the same; the package: `__main__` and `cli` the command line,
    `hubproc` the hub process and its meter, `commune` a simulated commune, `driver` its sessions,
    `measure` a phase's figures, `scenarios`, `report`)

Targets (issue #8): 1,000 communes syncing at once with p99 round trip < 500 ms; hub ingest
≥ 20,000 events/s, on SQLite and on PostgreSQL. Targets are reported, not enforced (exit 0 when
the run completed without refused requests).

The hub is a real `central-hub serve` process (after `central-hub init --data D --db URL`), on
loopback over plain HTTP with node bearer credentials (`--insecure-http`: init creates TLS
material, which would otherwise switch the hub to mutual TLS). Its CPU time (the process and any
children, e.g. `--workers N` once `serve` has it) and its RSS are sampled with psutil, apart from
this load generator; the database size is the SQLite file plus its WAL in the data dir, or
`pg_database_size` for PostgreSQL.

Enrollment (setup, timed apart): every commune gets a one-time token and exchanges it for a node id
and a bearer credential through the hub's own code (`HubStore.create_enroll_token` and
`HubStore.enroll`, what `central-hub enroll` and `POST /v1/enroll` run), in this process, on the
hub's database, before `serve` starts. Not over HTTP because `POST /v1/enroll` is held to 1 request
per second per client address (burst 20, `central_hub/nodeauth.py: ANON_RATE`): 3,321 enrollments
from one loopback address would take ~55 minutes; not one `central-hub enroll` process per commune
because a Python start costs ~1 s. For SQLite the setup connection runs with `synchronous=OFF`
(setup only; the served hub uses its own FULL connection).

Simulated communes (why not one `EdgeStore` each): a real edge store is a SQLite file written with
one fsync per dossier (~126 dossiers/s here, `docs/benchmarks.md`), so 3,321 of them filing
40 dossiers each would spend ~20 minutes on intake alone on this 2-core machine, and 3,321 open
stores would need ~6,600 SQLite connections and threads. Instead each commune (`commune.py`) keeps
its database in memory and syncs with the real client: `edge_node/sync.py: SyncClient` builds
its requests (real health stats and reference-data versions, the node credential as bearer),
posts them over one shared aiohttp session, maps refusals by the error registry and adapts the
batch size (64 KiB, doubled after a round trip under 2 s, up to 4 MiB); the commune applies the
answers by the edge's own rules (`protocol.session.EdgeSession.answer`) and a session ends by
`protocol.session.session_done`, as on an edge. What it writes goes through the protocol code an
edge writes through: request bodies validated and turned into drafts by `protocol.commands`
(`validate_create`/`create_draft`, `set_draft`, `transition_draft`, with the default catalogue and
holiday calendar), stamped as an edge stamps them (`protocol.stamp`), kept as canonical bytes. The
commune keeps only its chain head, its sync state, the events after the ack (a hub restored from
a backup, which would rewind the ack, is not a scenario here), and the events of a few recent
dossiers (folded with `protocol.merge.apply` when it drafts an edit). 429/5xx/transport failures
are retried with capped, jittered exponential backoff (`driver.py`). Events are generated before
a measured phase (the burst's first request bodies too, `SyncClient.prepare`: each commune encodes
its own on its own machine), so the load generator's CPU goes to HTTP and decoding while the hub is
measured. Everything runs in one asyncio
process; the report shows both sides' CPU so it says which one saturated.

With `--db postgresql://…` give an empty database: the scenarios of one run share it (each
scenario's hub is initialized into it again, its communes enrolled as new nodes).

Scenarios:
* burst — "yesterday": each commune files `--yesterday` dossiers and syncs them (64 sessions at a
  time; timed, not a target); then the morning: each commune files 20–40 new birth registrations
  (Faker vi_VN) and 3–8 edits or transitions of yesterday's dossiers, and every commune starts its
  sync session at the same instant on a fresh connection (`--spread S`: start times spread uniformly
  over S seconds). Measured: each HTTP round trip (POST sent → answer read), each session, wall
  time, hub events/s.
* day — a working day (07:30–17:00) compressed into `--day-seconds`. Each commune files 15–45
  dossiers, 60 % of them in the first three hours, plus edits and transitions; it syncs right after
  each write (one session at a time, as the edge's sync loop) and every `--interval` seconds when
  idle. 5 % of the communes (`--offline-share`) have been offline for 2–7 days with 200–400 events
  (stamped back then) and come online at a random time of the day to catch up. The province edits
  `--hub-edits-per-s` dossiers a second through the operator API, which communes receive.
* ingest — raw hub ingest: `--ingest-communes` communes each push `--ingest-events` events
  (creates, edits, transitions) at once, in batches starting at `--batch-bytes` (1 MiB).

`--profile FILE` records the hub with py-spy (if installed) during the measured phase and prints
where its time went.
"""
