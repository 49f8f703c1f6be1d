"""A node: the gossip server and client around one home, inside an event loop.

Each round the node reconciles with a few peers from its peer table (Negentropy
V1 over HTTP POST), fetches what it lacks in batches, verifies and stores it,
and pushes what the peer lacks. Objects new to the store are offered at once
to a few peers, so news spreads faster than the rounds. A peer that serves an
invalid object loses standing and is dropped after a few.

The node never calls asyncio.run: it runs in whatever loop starts it (the
`serve` command's, or the terminal app's). Blocking work (SQLite, signature
checks, indexing) runs in worker threads so the loop never stalls.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import random
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
from aiohttp import web

from commons.api import LocalApi
from commons.errors import CommonsError
from commons.objects import PeerRecord, SignedObject
from commons.service import Commons
from commons.store import Added, Event
from sync import intake
from sync.client import TIMEOUT, PeerClient, PeerUnavailable
from sync.errors import RemoteProtocolError
from sync.local_api import LocalApiServer
from sync.messages import MAX_BATCH_BYTES, MAX_IDS, MAX_ROUND_TRIPS, PROTOCOL, batches
from sync.negentropy import DEFAULT_FRAME_SIZE_LIMIT, Reconciler, SortedItems
from sync.peers import PeerInfo, PeerTable, PeerUrlError, load_rows, normalise_url, save_rows
from sync.policy import Declined, Policy, RateLimiter
from sync.server import build_app

log = logging.getLogger(__name__)

Clock = Callable[[], int]
FETCH_BATCH = 256  # ids per fetch request
FRESH_SECONDS = 600  # objects younger than this are offered eagerly when they arrive
MAX_DECLINED_MEMORY = 100_000  # per peer: ids it declined, so we stop pushing them


class SyncFault(Exception):
    """The peer served something invalid during a sync."""


@dataclass(frozen=True)
class SyncResult:
    """What one sync with one peer moved."""

    url: str
    fetched: int = 0
    pushed: int = 0
    round_trips: int = 0
    error: str | None = None
    declined: int = 0
    refused: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NodeEvent:
    """One line of the gossip log (kinds: started, stopped, sync, fetched, pushed,
    offered, received, unreachable, fault, dropped, peer, refused)."""

    time: int
    kind: str
    message: str
    peer: str | None = None


@dataclass
class _Stats:
    fetched: int = 0
    pushed: int = 0
    round_trips: int = 0
    declined: int = 0
    refused: int = 0


def parse_listen(listen: str) -> tuple[str, int]:
    """HOST:PORT (or [IPv6]:PORT) to its parts; port 0 picks a free port."""
    host, sep, port = listen.strip().rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise CommonsError(f"--listen {listen!r} must be HOST:PORT, e.g. 127.0.0.1:7400")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def _is_unspecified(host: str) -> bool:
    return host in ("0.0.0.0", "::", "")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class Node:
    def __init__(
        self,
        commons: Commons,
        *,
        listen: str = "127.0.0.1:0",
        peers: list[str] | None = None,
        policy: Policy | None = None,
        rng: random.Random,
        clock: Clock,
        round_interval: float = 30.0,
        name: str | None = None,
        mirror: bool = False,
        advertise: list[str] | None = None,
        fanout: int = 3,
        offer_fanout: int = 2,
        max_outbound: int = 8,
        eager: bool = True,
    ) -> None:
        self.commons = commons
        self.store = commons.store
        self.host, self.port = parse_listen(listen)
        self.policy = policy or Policy()
        self.rng = rng
        self.clock = clock
        self.round_interval = round_interval
        self.name = name
        self.mirror = mirror
        self.fanout = fanout
        self.offer_fanout = offer_fanout
        self.eager = eager
        self.url: str = _url(self.host, self.port)
        self.api_url: str | None = None
        self.rounds = 0
        self.last_round: int | None = None
        self.request_limiter = RateLimiter(self.policy.request_rate)
        self.byte_limiter = RateLimiter(self.policy.byte_rate)
        self.declined: Declined
        self._bootstrap = [normalise_url(u) for u in (peers or [])]
        self._advertise = [normalise_url(u) for u in (advertise or [])]
        self._max_outbound = max_outbound
        self._table: PeerTable | None = None
        self._session: aiohttp.ClientSession | None = None
        self._client: PeerClient | None = None
        self._prepare_lock = asyncio.Lock()
        self._items_lock = asyncio.Lock()
        self._generation = 0
        self._items_cache: tuple[int, SortedItems] | None = None
        self._syncing: dict[str, asyncio.Future[SyncResult]] = {}
        self._declined_by: dict[str, set[bytes]] = {}
        self._fresh: list[tuple[bytes, str]] = []
        self._fresh_event = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Future[None]] = set()
        self._runners: list[web.AppRunner] = []
        self._subscribers: list[Callable[[NodeEvent], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._index_task: asyncio.Future[Any] | None = None
        self._token: str | None = None
        self._started_at: int | None = None
        self._running = False
        self._stopped = False

    # -- lifecycle ------------------------------------------------------------

    async def _prepare(self) -> PeerTable:
        """Load the peer table and open the client session (once)."""
        async with self._prepare_lock:
            if self._table is not None:
                return self._table
            self._loop = asyncio.get_running_loop()
            rows = await asyncio.to_thread(load_rows, self.store)
            self.declined = await asyncio.to_thread(Declined, self.store, self.policy)
            table = PeerTable(rows, own_key=self.commons.public_key,
                              max_outbound=self._max_outbound, refuse=self.policy.blocks_peer)
            now = self.clock()
            for url in self._bootstrap:
                table.add(url, source="bootstrap", now=now)
            records = await asyncio.to_thread(self.store.objects, kind="peer", heads_only=False)
            for stored in records:
                table.learn(stored.obj, now)
            self._session = aiohttp.ClientSession(timeout=TIMEOUT)
            self._client = PeerClient(self._session)
            self.store.subscribe(self._on_store_event)
            self._table = table
            return table

    async def start(self) -> None:
        """Bind, publish our peer record, write node.json, and start gossiping."""
        table = await self._prepare()
        gossip = web.AppRunner(build_app(self), access_log=None)
        await gossip.setup()
        self._runners.append(gossip)
        await web.TCPSite(gossip, self.host, self.port).start()
        self.port = int(gossip.addresses[0][1])
        local_host = "127.0.0.1" if _is_unspecified(self.host) else self.host
        self.url = self._advertise[0] if self._advertise else _url(local_host, self.port)
        own = {self.url, _url(local_host, self.port), _url("127.0.0.1", self.port),
               _url("localhost", self.port), *self._advertise}
        table.set_own_urls(own)
        assert self._client is not None
        self._client.set_own_url(self.url)

        self._token = secrets.token_urlsafe(32)
        api_host = self.host if _is_loopback(self.host) else "127.0.0.1"
        api = web.AppRunner(
            LocalApiServer(self, LocalApi(self.commons), self._token).build_app(), access_log=None
        )
        await api.setup()
        self._runners.append(api)
        await web.TCPSite(api, api_host, 0).start()
        self.api_url = _url(api_host, int(api.addresses[0][1]))

        self._started_at = self.clock()
        if self.policy.block and hasattr(self.commons, "blocked"):
            self.commons.blocked = self.commons.blocked | self.policy.block  # answers skip them
        if hasattr(self.commons, "search_index"):
            self._index_task = asyncio.ensure_future(
                asyncio.to_thread(self.commons.search_index)
            )
        await asyncio.to_thread(self._publish_record)
        await asyncio.to_thread(self._write_node_info)
        self._running = True
        self._tasks.append(asyncio.create_task(self._gossip_loop()))
        if self.eager:
            self._tasks.append(asyncio.create_task(self._offer_loop()))
        self._emit("started", f"listening on {self.url}" + (" as a mirror" if self.mirror else ""))

    async def stop(self) -> None:
        """Stop gossiping and serving, remove node.json, save the peer table."""
        if self._stopped:
            return
        self._stopped = True
        self._running = False
        for task in self._tasks:
            task.cancel()
        pending: list[asyncio.Future[Any]] = [
            *self._tasks, *self._background, *self._syncing.values()
        ]
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._tasks.clear()
        await asyncio.to_thread(self._remove_node_info)
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self._index_task is not None:  # a worker thread cannot be cancelled; let it finish
            with contextlib.suppress(Exception):
                await self._index_task
        if self._table is not None:
            with contextlib.suppress(ValueError):
                self.store.unsubscribe(self._on_store_event)
            await self._save_peers()
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._emit("stopped", "the node stopped")

    async def index_ready(self) -> None:
        """Wait until the search index has caught up (if there is one)."""
        if self._index_task is not None:
            try:
                await asyncio.shield(self._index_task)
            except Exception as exc:  # the API call itself will then report it
                log.warning("search index is not available: %s", exc)

    def _publish_record(self) -> None:
        addresses = self._advertise or ([] if _is_unspecified(self.host) else [self.url])
        if not addresses:
            log.warning(
                "listening on %s without --advertise: peers cannot learn this node's address;"
                " pass --advertise http://YOUR-ADDRESS:%d", self.host, self.port
            )
            return
        me = self.commons.public_key
        name = (self.name or self.commons.name_of(me) or "commons node")[:64]
        mine = self.store.objects(kind="peer", author=me, heads_only=False)
        if mine:
            last = mine[-1].obj.content
            if isinstance(last, PeerRecord) and (
                list(last.addresses), last.name, last.mirror
            ) == (addresses, name, self.mirror):
                return
        self.commons.publish(PeerRecord(author=me, created_at=self.clock(),
                                        addresses=tuple(addresses), name=name, mirror=self.mirror))

    def _write_node_info(self) -> None:
        info = {
            "url": self.url,
            "api_url": self.api_url,
            "token": self._token,
            "pid": os.getpid(),
            "public_key": self.commons.public_key.hex(),
            "mirror": self.mirror,
        }
        path = self.commons.paths.node
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
        os.replace(tmp, path)

    def _remove_node_info(self) -> None:
        info = self.commons.paths.node_info()
        if info is not None and info.get("token") == self._token:
            self.commons.paths.node.unlink(missing_ok=True)

    async def _save_peers(self) -> None:
        if self._table is None:
            return
        rows, deleted = self._table.pending_rows()
        if rows or deleted:
            await asyncio.to_thread(save_rows, self.store, rows, deleted)

    # -- events ---------------------------------------------------------------

    def subscribe(self, callback: Callable[[NodeEvent], None]) -> None:
        """Call `callback` (in the loop's thread) with each NodeEvent."""
        self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[[NodeEvent], None]) -> None:
        self._subscribers.remove(callback)

    def _emit(self, kind: str, message: str, peer: str | None = None) -> None:
        event = NodeEvent(self.clock(), kind, message, peer)
        log.info("%s: %s", kind, message)
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:  # a subscriber's bug must not stop the gossip
                log.exception("node event subscriber failed")

    def _on_store_event(self, event: Event) -> None:
        # Called in whichever thread wrote to the store.
        self._generation += 1
        if isinstance(event, Added) and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                self._loop.call_soon_threadsafe(self._on_added, event.obj, event.origin)

    def _on_added(self, obj: SignedObject, origin: str) -> None:
        now = self.clock()
        if obj.kind == "peer" and self._table is not None:
            for peer in self._table.learn(obj, now):
                if peer.added_at == now and peer.last_seen is None:
                    self._emit("peer", f"learnt of {peer.name or 'a peer'} at {peer.url}", peer.url)
        if self._running and self.eager and obj.created_at >= now - FRESH_SECONDS:
            self._fresh.append((obj.id, origin))
            self._fresh_event.set()

    # -- what the server side asks of the node --------------------------------

    async def sorted_items(self) -> SortedItems:
        """Our (created_at, id) set, rebuilt only after the store changed."""
        cache = self._items_cache
        if cache is not None and cache[0] == self._generation:
            return cache[1]
        async with self._items_lock:
            generation = self._generation
            cache = self._items_cache
            if cache is not None and cache[0] == generation:
                return cache[1]
            items = await asyncio.to_thread(lambda: SortedItems(self.store.items()))
            self._items_cache = (generation, items)
            return items

    async def take_in(self, lines: list[bytes], *, origin: str,
                      expected: set[bytes] | None) -> intake.Intake:
        return await asyncio.to_thread(
            intake.take_in, self.store, lines, clock=self.clock, origin=origin,
            policy=self.policy, declined=self.declined, expected=expected,
        )

    def note_served(self, peer: str | None, count: int) -> None:
        if peer and count and self._table is not None:
            with contextlib.suppress(PeerUrlError):
                self._table.count_sent(normalise_url(peer), count)

    def note_pushed_to_us(self, origin: str, report: intake.Intake) -> None:
        if report.accepted:
            self._emit("received", f"{len(report.accepted)} objects pushed by {origin}", origin)
            if self._table is not None:
                self._table.count_received(origin, len(report.accepted))
        if report.refused:
            self._emit("refused", f"{len(report.refused)} invalid objects pushed by {origin}:"
                       f" {report.refused[0].reason}", origin)

    async def status(self) -> dict[str, Any]:
        rows = await asyncio.to_thread(
            self.store.query, "SELECT kind, count(*) FROM objects GROUP BY kind"
        )
        counts = {kind: n for kind, n in rows}
        peers = self._table.all() if self._table is not None else []
        index = "none"
        if self._index_task is not None:
            index = "warming" if not self._index_task.done() else (
                "failed" if self._index_task.exception() else "ready")
        return {
            "protocol": PROTOCOL,
            "name": self.name or self.commons.name_of(self.commons.public_key),
            "url": self.url,
            "public_key": self.commons.public_key.hex(),
            "mirror": self.mirror,
            "objects": counts,
            "total": sum(counts.values()),
            "documents": counts.get("document", 0),
            "peers": {
                "known": len(peers),
                "active": sum(p.state == "active" for p in peers),
                "dropped": sum(p.state == "dropped" for p in peers),
                "healthy": sum(p.state == "active" and p.failures == 0 and p.last_seen is not None
                               for p in peers),
            },
            "rounds": self.rounds,
            "last_round": self.last_round,
            "started_at": self._started_at,
            "index": index,
            "declined": len(self.declined) if hasattr(self, "declined") else 0,
            "policy": self.policy.describe(),
        }

    # -- peers ----------------------------------------------------------------

    def peers(self) -> list[PeerInfo]:
        return self._table.all() if self._table is not None else []

    async def add_peer(self, url: str) -> PeerInfo:
        """Add a peer by hand (this also forgives one that was dropped), then sync with it."""
        table = await self._prepare()
        if self.policy.blocks_peer(normalise_url(url)):
            raise PeerUrlError(f"this node's policy blocks {url}; edit block_peers to allow it")
        peer = table.add(url, source="manual", now=self.clock())
        if peer is None:
            raise PeerUrlError(f"{url} is this node itself")
        self._emit("peer", f"added {peer.url}", peer.url)
        await self._save_peers()
        if self._running:
            self._spawn(self._sync_quietly(peer.url))
        return peer

    def remove_peer(self, url: str) -> bool:
        if self._table is None:
            return False
        removed = self._table.remove(url)
        if removed:
            self._emit("peer", f"removed {normalise_url(url)}", normalise_url(url))
            if self._loop is not None:
                self._spawn(self._save_peers())
        return removed

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _sync_quietly(self, url: str) -> None:
        with contextlib.suppress(Exception):
            await self.sync_with(url)

    # -- gossip ---------------------------------------------------------------

    async def _gossip_loop(self) -> None:
        while True:
            try:
                await self.sync_now()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("gossip round failed")
            await asyncio.sleep(self.round_interval * self.rng.uniform(0.75, 1.25))

    async def sync_now(self) -> list[SyncResult]:
        """One gossip round: sync with a few peers at once."""
        table = await self._prepare()
        chosen = table.choose(self.clock(), self.rng, self.fanout, exclude=self._syncing)
        results = await asyncio.gather(*(self.sync_with(p.url) for p in chosen))
        self.rounds += 1
        self.last_round = self.clock()
        await self._save_peers()
        return list(results)

    async def sync_with(self, url: str) -> SyncResult:
        """Reconcile with one peer, fetch what we lack, push what it lacks."""
        await self._prepare()
        try:
            url = normalise_url(url)
        except PeerUrlError as exc:
            return SyncResult(url, error=str(exc))
        running = self._syncing.get(url)
        if running is None:
            running = asyncio.ensure_future(self._sync(url))
            self._syncing[url] = running
            running.add_done_callback(lambda _: self._syncing.pop(url, None))
        return await asyncio.shield(running)

    async def _sync(self, url: str) -> SyncResult:
        table = self._table
        assert table is not None
        if table.is_own(url):
            return SyncResult(url, error=f"{url} is this node itself")
        if self.policy.blocks_peer(url):
            return SyncResult(url, error="this node's policy blocks that peer")
        stats = _Stats()
        error: str | None = None
        try:
            need, have = await self._reconcile(url, stats)
            await self._fetch(url, need, stats)
            await self._push(url, have, stats)
        except PeerUnavailable as exc:
            error = str(exc)
            delay = table.failure(url, self.clock(), self.rng)
            self._emit("unreachable", f"{error}; next try in {delay:.0f}s", url)
        except (RemoteProtocolError, SyncFault) as exc:
            error = f"{url} misbehaved: {exc}"
            dropped = table.fault(url, self.clock())
            self._emit("fault", error, url)
            if dropped:
                self._emit("dropped", f"dropped {url} after {table.max_faults} faults", url)
        else:
            table.success(url, self.clock(), sent=stats.pushed, received=stats.fetched)
            self._emit("sync", f"{url}: fetched {stats.fetched}, pushed {stats.pushed},"
                       f" {stats.round_trips} round trips", url)
        return SyncResult(url, stats.fetched, stats.pushed, stats.round_trips, error,
                          stats.declined, stats.refused)

    async def _reconcile(self, url: str, stats: _Stats) -> tuple[list[bytes], list[bytes]]:
        assert self._client is not None
        items = await self.sorted_items()
        client = Reconciler(items, DEFAULT_FRAME_SIZE_LIMIT)
        message: bytes | None = client.initiate()
        have: list[bytes] = []
        need: list[bytes] = []
        while message is not None:
            if stats.round_trips >= MAX_ROUND_TRIPS:
                raise RemoteProtocolError(f"reconciliation did not end in {MAX_ROUND_TRIPS} round"
                                          " trips")
            reply = await self._client.reconcile(url, message)
            stats.round_trips += 1
            message, got_have, got_need = client.reconcile(reply)
            have.extend(got_have)
            need.extend(got_need)
        return need, have

    async def _fetch(self, url: str, need: list[bytes], stats: _Stats) -> None:
        assert self._client is not None
        todo = await asyncio.to_thread(intake.wanted, self.store, need, self.declined)
        for start in range(0, len(todo), FETCH_BATCH):
            remaining = todo[start : start + FETCH_BATCH]
            while remaining:
                lines = await self._client.fetch(url, remaining)
                if not lines:
                    break  # it no longer has them (retracted meanwhile)
                report = await self.take_in(lines, origin=url, expected=set(remaining))
                stats.fetched += len(report.accepted)
                stats.declined += len(report.declined)
                if report.accepted:
                    self._emit("fetched", f"{len(report.accepted)} objects from {url}", url)
                if report.refused:
                    stats.refused += len(report.refused)
                    raise SyncFault(f"served an invalid object: {report.refused[0].reason}")
                remaining = [i for i in remaining if i not in report.received_ids]

    async def _push(self, url: str, have: list[bytes], stats: _Stats) -> None:
        skip = self._declined_by.get(url, set())
        ids = [i for i in have if i not in skip]
        if not ids:
            return
        stats.pushed += await self._push_ids(url, ids)

    async def _push_ids(self, url: str, ids: list[bytes]) -> int:
        assert self._client is not None
        pushed = 0
        sized = await asyncio.to_thread(intake.sizes, self.store, ids)
        for batch in batches(sized, max_count=MAX_IDS, max_bytes=MAX_BATCH_BYTES):
            rows = await asyncio.to_thread(intake.read_raw, self.store, batch)
            if not rows:
                continue
            reply = await self._client.push(url, [raw for _, raw in rows])
            pushed += reply.accepted
            if reply.declined:
                skip = self._declined_by.setdefault(url, set())
                if len(skip) < MAX_DECLINED_MEMORY:
                    skip.update(bytes.fromhex(r.id) for r in reply.declined if len(r.id) == 64)
            if reply.refused:
                self._emit("refused", f"{url} refused {len(reply.refused)} objects we sent:"
                           f" {reply.refused[0].reason}", url)
        if pushed:
            self._emit("pushed", f"{pushed} objects to {url}", url)
        return pushed

    async def _offer_loop(self) -> None:
        """Offer fresh objects to a few peers as soon as they arrive."""
        while True:
            await self._fresh_event.wait()
            await asyncio.sleep(0.05)  # let a burst of arrivals share one offer
            self._fresh_event.clear()
            batch, self._fresh = self._fresh[:MAX_IDS], self._fresh[MAX_IDS:]
            if self._fresh:
                self._fresh_event.set()
            if not batch or self._table is None:
                continue
            origins = {origin for _, origin in batch}
            chosen = self._table.choose(self.clock(), self.rng, self.offer_fanout,
                                        exclude=origins if len(origins) == 1 else ())
            await asyncio.gather(*(
                self._offer_to(p.url, [oid for oid, origin in batch if origin != p.url])
                for p in chosen
            ))

    async def _offer_to(self, url: str, ids: list[bytes]) -> None:
        assert self._client is not None and self._table is not None
        if not ids:
            return
        try:
            reply = await self._client.offer(url, ids)
            if reply.want:
                pushed = await self._push_ids(url, list(reply.want))
                self._table.count_sent(url, pushed)
                self._emit("offered", f"{pushed} fresh objects to {url}", url)
        except PeerUnavailable as exc:
            self._table.failure(url, self.clock(), self.rng)
            log.info("offer to %s failed: %s", url, exc)
        except RemoteProtocolError as exc:
            self._table.fault(url, self.clock())
            self._emit("fault", f"{url} answered an offer wrongly: {exc}", url)
