"""The hub's background work for operators: watch every node's health, record each change as an
alert and POST it to the webhook, and downsample the history of exchanges.

Health is evaluated every `health_check_s` and right after a node's exchange (`kick`). A change of
level (ok → warning → critical and back) is stored with since-when and sent, in order, by one sender
task, retried a few times with backoff; a webhook that stays down is logged and marked undelivered,
and never holds up the hub. Revoked nodes are not watched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from central_hub.config import HubConfig
from central_hub.nodes import fleet, history
from central_hub.nodes.fleet import Change
from central_hub.store import HubStore
from protocol import APP_VERSION
from protocol.calendar import iso
from service import filelock
from service.db import is_postgres, lock_key

log = logging.getLogger(__name__)

WEBHOOK_TRIES = 3
EVENT = "node_health_changed"


class NodeSnapshot:
    """Every node's item (`fleet.node_items`), computed in full at most once per `max_age_s`
    however many operators, scrapers and checks ask: at 3,321 nodes that computation is most of
    a page's cost. A node that just exchanged is `touch`ed and recomputed alone by the next
    reader, so nobody waits to see a sync; `invalidate` (enrollment, revocation) forces a full
    recomputation. Treat the items as read-only."""

    def __init__(self, store: HubStore, config: HubConfig,
                 links: Callable[[], dict[str, float]] = dict, max_age_s: float = 2.0) -> None:
        self.store, self.rules, self.links = store, config.health, links
        self.max_age_s = max_age_s
        self._items: list[dict[str, Any]] = []
        self._at = -1e9
        self._lock = asyncio.Lock()
        self._generation = 0
        self._dirty: set[str] = set()
        self._roll: tuple[int, ...] = ()

    def invalidate(self) -> None:
        """Something changed for many nodes: the next reader computes afresh."""
        self._generation += 1
        self._at = -1e9

    def touch(self, node: str) -> None:
        """This node changed: the next reader recomputes it."""
        self._dirty.add(node)

    async def items(self, max_age_s: float | None = None) -> list[dict[str, Any]]:
        """The items, no older than `max_age_s` (default: the snapshot's), touched nodes
        recomputed."""
        limit = self.max_age_s if max_age_s is None else max_age_s
        loop = asyncio.get_running_loop()
        roll = await fleet.roll_call(self.store)  # enrolled or revoked here or by the CLI
        if loop.time() - self._at <= limit and not self._dirty and roll == self._roll:
            return self._items
        async with self._lock:  # concurrent readers share one computation
            if loop.time() - self._at > limit or roll != self._roll:
                self._roll = roll
                generation, started = self._generation, loop.time()
                self._dirty = set()
                self._items = await fleet.node_items(self.store, self.rules, self.links())
                self._at = started if generation == self._generation else -1e9
            elif self._dirty:
                dirty, self._dirty = self._dirty, set()
                fresh = {}
                for node in dirty:
                    for item in await fleet.node_items(self.store, self.rules, self.links(),
                                                       node):
                        fresh[item["node"]] = item
                self._items = [fresh.get(i["node"], i) for i in self._items]
            return self._items


class Leadership:
    """Which of the hub processes sharing a database runs the monitor (one, so an alert is
    raised and sent once). PostgreSQL: a session advisory lock on the store's writer
    connection; SQLite: a file lock (`service.filelock`) on `monitor.lock` next to the
    database. Both are released by the kernel or the server when the process dies, and a
    standing-by process takes over."""

    def __init__(self, store: HubStore) -> None:
        self.store = store
        self._fd: int | None = None
        self.held = False

    async def try_acquire(self) -> bool:
        if self.held:
            return True
        conn: Any = self.store.conn
        if is_postgres(conn):
            self.held = bool(await conn.fetchval(
                "SELECT pg_try_advisory_lock(?)", (lock_key("monitor"),)))
            return self.held
        fd = filelock.try_lock(self.store.path.with_name("monitor.lock"))
        if fd is None:
            return False
        self._fd, self.held = fd, True
        return True

    def release(self) -> None:
        """Let another process lead (PostgreSQL: the lock goes with the connection)."""
        if self._fd is not None:
            filelock.release(self._fd)
            self._fd = None
        self.held = False


class Monitor:
    """Health watch, alerts with their webhook, and history downsampling for one hub."""

    retry_base_s = 0.5  # webhook backoff: 0.5 s, 1 s, 2 s
    standby_s = 5.0  # how often a standing-by process tries to take the monitor over
    kick_delay_s = 1.0  # exchanges within this long share one health evaluation

    def __init__(self, store: HubStore, config: HubConfig, snapshot: NodeSnapshot) -> None:
        self.store = store
        self.config = config
        self.snapshot = snapshot
        self.kicked = asyncio.Event()
        self.queue: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue()
        self.tasks: list[asyncio.Task[None]] = []
        self.http: aiohttp.ClientSession | None = None
        self.checks = 0
        self.sent = 0
        self.failed = 0
        self.on_change: list[Callable[[Change], None]] = []
        self.leadership = Leadership(store)

    async def start(self) -> None:
        """Start the background tasks — in one process per database: with several hub
        processes (`serve --workers`), the others wait to take over."""
        if await self.leadership.try_acquire():
            self._begin()
        else:
            log.info("another hub process runs the monitor; this one stands by")
            self.tasks = [asyncio.create_task(self._stand_by(), name="monitor-standby")]

    def _begin(self) -> None:
        self.tasks += [asyncio.create_task(self._watch(), name="health-watch"),
                       asyncio.create_task(self._prune(), name="history-prune"),
                       asyncio.create_task(self._send(), name="alert-webhook")]

    async def _stand_by(self) -> None:
        while True:  # polling: the lock's holder is another process, nothing to wait on here
            await asyncio.sleep(self.standby_s)
            if await self.leadership.try_acquire():
                break
        log.info("this hub process now runs the monitor")
        self._begin()

    async def stop(self) -> None:
        """Stop the tasks (undelivered webhooks are dropped: the alert log keeps them)."""
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks = []
        self.leadership.release()
        if self.http is not None:
            await self.http.close()

    def kick(self) -> None:
        """Evaluate soon (a node just exchanged)."""
        self.kicked.set()

    async def check(self, full: bool = True) -> list[Change]:
        """Evaluate every node (`full`: all recomputed now; else the snapshot's items, where
        only the nodes that exchanged since are recomputed); record and queue the changes;
        return them."""
        now = self.store.now_ms()
        items = await self.snapshot.items(max_age_s=0 if full else None)
        known = await fleet.health_states(self.store)
        changes: list[Change] = []
        refreshed: dict[str, list[dict[str, Any]]] = {}
        by_node = {}
        for item in items:
            if item["revoked"]:
                continue
            node, health, why = item["node"], item["health"], item["why"]
            by_node[node] = item
            state = known.get(node)
            if state is not None and state.health == health:
                if [r["code"] for r in state.reasons] != [r["code"] for r in why]:
                    refreshed[node] = why
                continue
            previous = state.health if state else None
            if health == "ok":
                not_ok_since = None
            elif state is not None and state.not_ok_since is not None:
                not_ok_since = state.not_ok_since
            else:
                not_ok_since = now
            changes.append(Change(node, previous, health, now, not_ok_since, why))
        ids = await fleet.record_changes(self.store, changes)
        await fleet.refresh_reasons(self.store, refreshed)
        if self.config.alert_webhook_url:
            for log_id, change in zip(ids, changes, strict=True):
                if change.previous is None and change.health == "ok":
                    continue  # a node first seen healthy is no news
                self.queue.put_nowait((log_id, self.payload(change, by_node[change.node])))
        for change in changes:
            log.info("node %s health %s -> %s", change.node, change.previous, change.health,
                     extra={"node": change.node, "health": change.health,
                            "previous": change.previous})
            for hook in self.on_change:
                hook(change)
        self.checks += 1
        return changes

    def payload(self, change: Change, item: dict[str, Any]) -> dict[str, Any]:
        """The webhook's JSON body for a change."""
        base = self.config.public_url.rstrip("/")
        return {
            "event": EVENT, "node": change.node, "commune": item["commune"],
            "commune_name": item["commune_name"], "health": change.health,
            "previous": change.previous, "at": iso(change.at),
            "not_ok_since": iso(change.not_ok_since), "reasons": change.reasons,
            "last_success_at": item["last_success_at"], "pending_events": item["pending_events"],
            "url": f"{base}/nodes/{change.node}" if base else f"/nodes/{change.node}",
            "hub_version": APP_VERSION,
        }

    async def prune(self) -> dict[str, int]:
        """Downsample the history now."""
        c = self.config
        return await history.downsample(self.store, self.store.now_ms(),
                                      raw_hours=c.history_raw_hours,
                                      hourly_days=c.history_hourly_days, days=c.history_days)

    async def _watch(self) -> None:
        """Every `health_check_s` a full check (time alone turns a silent node critical); after
        exchanges, a light one. Kicks are gathered for `kick_delay_s`: in a morning burst of
        thousands of exchanges the fleet is evaluated about once a second, not once each."""
        loop = asyncio.get_running_loop()
        full, last_full = True, loop.time()
        while True:
            try:
                await self.check(full=full)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("health check failed")
            if full:
                last_full = loop.time()
            wait = max(0.0, last_full + self.config.health_check_s - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.kicked.wait(), wait)
                await asyncio.sleep(self.kick_delay_s)
            self.kicked.clear()
            full = loop.time() >= last_full + self.config.health_check_s

    async def _prune(self) -> None:
        while True:
            try:
                done = await self.prune()
                if any(done.values()):
                    log.info("history downsampled: %s", done, extra={"downsampled": done})
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("history downsampling failed")
            await asyncio.sleep(self.config.history_prune_s)

    async def _send(self) -> None:
        while True:
            log_id, body = await self.queue.get()
            ok = await self.post(body)
            self.sent += ok
            self.failed += not ok
            try:
                await fleet.mark_delivered(self.store, log_id, ok)
            except Exception:
                log.exception("cannot mark alert %d delivered", log_id)

    async def post(self, body: dict[str, Any]) -> bool:
        """POST one alert to the webhook, a few tries with backoff; True if it took it."""
        if self.http is None:
            self.http = aiohttp.ClientSession()
        timeout = aiohttp.ClientTimeout(total=self.config.alert_webhook_timeout_s)
        for attempt in range(WEBHOOK_TRIES):
            try:
                async with self.http.post(self.config.alert_webhook_url, json=body,
                                          timeout=timeout) as resp:
                    if resp.status < 300:
                        return True
                    problem = f"answered {resp.status}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                problem = f"{exc.__class__.__name__}: {exc}"
            log.warning("alert webhook failed (try %d of %d): %s", attempt + 1, WEBHOOK_TRIES,
                        problem)
            await asyncio.sleep(self.retry_base_s * 2**attempt)
        return False
