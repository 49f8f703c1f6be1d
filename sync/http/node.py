"""A node: the gossip server and client around one home, inside an event loop.

Every gossip decision (whom to sync with each round, what to fetch and push,
whom to offer fresh objects, when a peer has misbehaved) is made by the
sans-IO `GossipSession` and its `Exchange`s (sync.gossip). `Node` is their
thin aiohttp driver: it serves the gossip endpoints and the local API, sends
the requests an exchange asks for, answers its store questions, and runs the
round and offer timers.

The node never calls asyncio.run: it runs in whatever loop starts it (the
`serve` command's, or the terminal app's). Blocking work (SQLite, signature
checks, indexing) runs in worker threads so the loop never stalls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import sqlite3
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from commons.api import LocalApi
from commons.model.errors import CommonsError
from commons.model.objects import SignedObject
from commons.service import Commons
from commons.storage.store import Added, BlockChanged, Event
from sync.api import RunningNode
from sync.gossip.exchange import Exchange
from sync.gossip.expiry import MAX_PEER_RECORDS
from sync.gossip.intake import Intake
from sync.gossip.peers import PeerInfo, PeerUrlError, load_rows, normalise_url, save_rows
from sync.gossip.policy import Policy
from sync.gossip.session import GossipSession, PeerLimits, SyncResult
from sync.http import startup
from sync.http.client import TIMEOUT, PeerClient
from sync.http.exchanges import run_exchange
from sync.http.local_api import LocalApiServer, ServedNode
from sync.http.membership import Membership
from sync.http.server import GossipService, build_app
from sync.http.status import EventBus, NodeEvent, index_state, status_view
from sync.http.store_io import StoreIO
from sync.protocol.auth import Sender
from sync.protocol.negentropy import SortedItems
from sync.protocol.proof import Challenge, Proof, sign_proof

if TYPE_CHECKING:
    from sync.discovery import Discovery, Found
    from sync.web import WebConfig

log = logging.getLogger(__name__)

Clock = Callable[[], int]


class Node:
    """Implements `sync.api.RunningNode` for its owner and `GossipService` for its peers."""

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
        max_candidates: int = 2,
        max_peer_records: int = MAX_PEER_RECORDS,
        eager: bool = True,
        web_pages: WebConfig | None = None,
        discovery: bool = False,
    ) -> None:
        self.commons = commons
        self.store = commons.store
        self.host, self.port = startup.parse_listen(listen)
        self.policy = policy or Policy()
        self.rng = rng
        self.clock = clock
        self.round_interval = round_interval
        self.name = name
        self.mirror = mirror
        self.web_pages = web_pages  # serve the read-only web pages beside gossip
        self.discovery = discovery  # announce and look for nodes on the LAN (mDNS)
        self._discovery: Discovery | None = None
        self.url: str = startup.http_url(self.host, self.port)
        self.api_url: str | None = None
        self.session = GossipSession(self.policy, own_key=commons.public_key, fanout=fanout,
                                     offer_fanout=offer_fanout, max_outbound=max_outbound,
                                     max_candidates=max_candidates, eager=eager)
        self.limits = PeerLimits(self.policy)
        self.events = EventBus(clock)
        self.objects = StoreIO(self.store, self.policy, clock)
        self.membership = Membership(self.session, self.objects, client=self._peer_client,
                                     clock=clock, rng=rng, changed=self._peers_changed,
                                     max_peer_records=max_peer_records)
        self._bootstrap = [normalise_url(u) for u in (peers or [])]
        self._advertise = [normalise_url(u) for u in (advertise or [])]
        self._prepared = False
        self._prepare_lock = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None
        self._client: PeerClient | None = None
        self._syncing: dict[str, asyncio.Future[SyncResult]] = {}
        self._fresh_event = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Future[None]] = set()
        self._runners: list[web.AppRunner] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._index_task: asyncio.Future[Any] | None = None
        self._token: str | None = None
        self._started_at: int | None = None
        self._stopped = False

    # The session keeps these; they stay readable (and `eager` settable) here.

    @property
    def eager(self) -> bool:
        return self.session.eager

    @eager.setter
    def eager(self, value: bool) -> None:
        self.session.eager = value

    @property
    def rounds(self) -> int:
        return self.session.rounds

    @property
    def last_round(self) -> int | None:
        return self.session.last_round

    # -- lifecycle ------------------------------------------------------------

    async def _prepare(self) -> None:
        """Load the peer table and open the client session (once)."""
        async with self._prepare_lock:
            if self._prepared:
                return
            self._loop = asyncio.get_running_loop()
            rows = await asyncio.to_thread(load_rows, self.store)
            await self.objects.open()
            records = await asyncio.to_thread(self.store.objects, kind="peer", heads_only=False)
            self.session.load_peers(rows, bootstrap=self._bootstrap,
                                    records=[r.obj for r in records], now=self.clock())
            self._http = aiohttp.ClientSession(timeout=TIMEOUT)
            self._client = PeerClient(self._http, signer=self.commons.identity, clock=self.clock)
            self.store.subscribe(self._on_store_event)
            await self.membership.expire()  # the store may hold more records than it keeps
            self._prepared = True

    async def start(self) -> None:
        """Bind, publish our peer record, write node.json, and start gossiping."""
        await self._prepare()
        app = build_app(self)
        if self.web_pages is not None:
            from sync.web import mount

            mount(app, self, self.web_pages)
        self.port = await startup.serve_app(app, self.host, self.port, self._runners)
        self.url, own = startup.own_urls(self.host, self.port, self._advertise)
        self.session.table.set_own_urls(own)
        assert self._client is not None
        self._client.set_own_url(self.url)

        self._token = secrets.token_urlsafe(32)
        api_host = self.host if startup.is_loopback(self.host) else "127.0.0.1"
        api = LocalApiServer(self, LocalApi(self.commons), self._token).build_app()
        self.api_url = startup.http_url(
            api_host, await startup.serve_app(api, api_host, 0, self._runners))

        self._started_at = self.clock()
        if self.policy.block and hasattr(self.commons, "blocked"):
            self.commons.blocked = self.commons.blocked | self.policy.block  # answers skip them
        if hasattr(self.commons, "search_index"):
            # Words at once; vectors fill in behind (the index's own worker), so
            # the node answers from the start, saying how far the dense index is.
            self._index_task = startup.in_daemon_thread(
                lambda: self.commons.search_index(dense=False), name="commons-index-open")
        addresses = self._advertise or ([] if startup.is_unspecified(self.host) else [self.url])
        await asyncio.to_thread(
            startup.publish_record, self.commons, addresses=addresses, name=self.name,
            mirror=self.mirror, now=self.clock(), host=self.host, port=self.port,
        )
        await asyncio.to_thread(startup.write_node_info, self.commons.paths, {
            "url": self.url,
            "api_url": self.api_url,
            "token": self._token,
            "pid": os.getpid(),
            "public_key": self.commons.public_key.hex(),
            "mirror": self.mirror,
        })
        if self.discovery:
            await self._start_discovery()
        self.session.live = True
        self._tasks.append(asyncio.create_task(self._gossip_loop()))
        self._tasks.append(asyncio.create_task(self.membership.prove_loop()))
        self._tasks.append(asyncio.create_task(self.membership.expiry_loop()))
        if self.eager:
            self._tasks.append(asyncio.create_task(self._offer_loop()))
        self.events.emit("started",
                         f"listening on {self.url}" + (" as a mirror" if self.mirror else ""))

    async def stop(self) -> None:
        """Stop gossiping and serving, remove node.json, save the peer table."""
        if self._stopped:
            return
        self._stopped = True
        self.session.live = False
        if self._discovery is not None:
            with contextlib.suppress(Exception):
                await self._discovery.stop()
            self._discovery = None
        for task in self._tasks:
            task.cancel()
        pending: list[asyncio.Future[Any]] = [
            *self._tasks, *self._background, *self._syncing.values()
        ]
        for future in pending:
            future.cancel()
        # Cancelled tasks end at their next await; one that will not is left behind.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True),
                                   startup.STOP_GRACE_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.membership.stop(), startup.STOP_GRACE_S)
        self._tasks.clear()
        await asyncio.to_thread(startup.remove_node_info, self.commons.paths, self._token)
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self._prepared:
            with contextlib.suppress(ValueError):
                self.store.unsubscribe(self._on_store_event)
            await self._save_peers()
        if self._http is not None:
            await self._http.close()
            self._http = None
        self.events.emit("stopped", "the node stopped")

    async def _start_discovery(self) -> None:
        from sync.discovery import Discovery, lan_addresses

        addresses = lan_addresses(self.host, self._advertise)
        if not addresses:
            log.info("not announcing on the LAN: %s listens on no LAN address", self.url)
            return
        self._discovery = Discovery(
            key=self.commons.public_key.hex(), name=self.name, mirror=self.mirror,
            port=self.port, addresses=addresses, on_found=self._on_discovered)
        try:
            await self._discovery.start()
        except OSError as exc:  # no multicast on this network: gossip works without it
            log.warning("LAN discovery is off: %s", exc)
            self._discovery = None
            return
        self.events.emit("started", f"announcing {', '.join(addresses)} on the LAN")

    def _on_discovered(self, found: Found) -> None:
        if self.session.discovered(found.url, key=found.key, name=found.name,
                                   mirror=found.mirror, now=self.clock()):
            self._spawn(self._save_peers())
        self._publish()

    async def index_ready(self) -> None:
        """Wait until the search index has caught up (if there is one)."""
        if self._index_task is not None:
            try:
                await asyncio.shield(self._index_task)
            except Exception as exc:  # the API call itself will then report it
                log.warning("search index is not available: %s", exc)

    def _peer_client(self) -> PeerClient:
        assert self._client is not None, "the node is not prepared"
        return self._client

    async def _peers_changed(self) -> None:
        self._publish()
        await self._save_peers()

    async def _save_peers(self) -> None:
        rows, deleted = self.session.table.pending_rows()
        if rows or deleted:
            await asyncio.to_thread(save_rows, self.store, rows, deleted)

    # -- events ---------------------------------------------------------------

    def subscribe(self, callback: Callable[[NodeEvent], None]) -> None:
        """Call `callback` (in the loop's thread) with each NodeEvent."""
        self.events.subscribe(callback)

    def unsubscribe(self, callback: Callable[[NodeEvent], None]) -> None:
        self.events.unsubscribe(callback)

    def _publish(self, exchange: Exchange | None = None) -> None:
        if exchange is not None:
            self.events.publish(exchange.take_notices())
        self.events.publish(self.session.take_notices())

    def _on_store_event(self, event: Event) -> None:
        # Called in whichever thread wrote to the store.
        self.objects.changed()
        if isinstance(event, BlockChanged) and not event.blocked and self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._spawn, self.objects.unblocked())
        if isinstance(event, Added) and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                self._loop.call_soon_threadsafe(self._on_added, event.obj, event.origin)

    def _on_added(self, obj: SignedObject, origin: str) -> None:
        if self.session.object_added(obj, origin, self.clock()):
            self._fresh_event.set()
        if obj.kind == "peer":
            self.membership.record_arrived()
            self.membership.wake()
        self._publish()

    # -- what the gossip endpoints ask of the node (server.GossipService) -----

    def now(self) -> int:
        return self.clock()

    @property
    def public_key(self) -> bytes:
        return self.commons.public_key

    def heard_from(self, sender: Sender | None) -> None:
        self.session.heard_from(sender.key if sender else None)

    def prove(self, dialler: bytes, challenge: Challenge) -> Proof:
        return sign_proof(self.commons.identity, dialler, challenge.challenge)

    def origin_of(self, sender: Sender | None, claimed: str | None, remote: str) -> str:
        return self.session.origin_of(sender.key if sender else None, claimed, remote)

    async def sorted_items(self) -> SortedItems:
        return await self.objects.sorted_items()

    async def read_objects(self, ids: Sequence[bytes]) -> list[bytes]:
        return [raw for _, raw in await self.objects.raw_objects(ids)]

    async def wanted(self, ids: Sequence[bytes]) -> list[bytes]:
        return await self.objects.wanted(ids)

    async def take_in(self, lines: Sequence[bytes], *, origin: str,
                      expected: set[bytes] | None) -> Intake:
        return await self.objects.take_in(lines, origin=origin, expected=expected)

    def note_served(self, peer: str | None, count: int) -> None:
        self.session.served(peer, count)

    def note_pushed_to_us(self, origin: str, report: Intake) -> None:
        self.session.pushed_to_us(origin, len(report.accepted), [r.reason for r in report.refused])
        self._publish()

    async def status(self) -> dict[str, Any]:
        own_name, counts, quarantined = await self.objects.facts(self.commons.public_key)
        return status_view(
            name=self.name or own_name, url=self.url,
            public_key=self.commons.public_key, mirror=self.mirror,
            counts=counts, session=self.session,
            started_at=self._started_at, index=index_state(self._index_task),
            dense=await self._dense_state(),
            declined=len(self.objects.declined or ()), policy=self.policy,
            quarantined=quarantined, ingress=self.limits.ingress.describe(),
        )

    async def _dense_state(self) -> dict[str, Any] | None:
        """Documents searchable by meaning, of all, and the rate they are embedded at."""
        task = self._index_task
        if task is None or not task.done() or task.exception() is not None:
            return None
        try:
            state = await asyncio.to_thread(self.commons.index_state)
        except (sqlite3.Error, OSError, CommonsError) as exc:  # a full disk: say the rest
            log.warning("the search index's state is unknown: %s", exc)
            return None
        return state.to_json()

    # -- peers (sync.api.NodeApi) ---------------------------------------------

    def peers(self) -> list[PeerInfo]:
        return self.session.table.all()

    async def add_peer(self, url: str) -> PeerInfo:
        """Add a peer by hand (this also forgives one that was dropped), then sync with it."""
        await self._prepare()
        try:
            peer = self.session.add_peer(url, self.clock())
        finally:
            self._publish()
        await self._save_peers()
        if self.session.live:
            self._spawn(self._sync_quietly(peer.url))
        return peer

    def remove_peer(self, url: str) -> bool:
        if not self._prepared:
            return False
        removed = self.session.remove_peer(url)
        self._publish()
        if removed and self._loop is not None:
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
        await self._prepare()
        chosen = self.session.choose_round(self.clock(), self.rng, busy=self._syncing)
        results = await asyncio.gather(*(self.sync_with(url) for url in chosen))
        self.session.round_finished(self.clock())
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
        refusal = self.session.refusal(url)
        if refusal is not None:
            return SyncResult(url, error=refusal)
        exchange = self.session.start_sync(url, await self.sorted_items())
        await self._run(exchange)
        result = self.session.finish_sync(exchange, self.clock(), self.rng)
        self._publish()
        if result.error is None:
            await self.membership.prove_named(url)
        return result

    async def _offer_loop(self) -> None:
        """Offer fresh objects to a few peers as soon as they arrive."""
        while True:
            await self._fresh_event.wait()
            await asyncio.sleep(0.05)  # let a burst of arrivals share one offer
            self._fresh_event.clear()
            offers = self.session.plan_offers(self.clock(), self.rng)
            if self.session.has_fresh:
                self._fresh_event.set()
            await asyncio.gather(*(self._offer(exchange) for exchange in offers))

    async def _offer(self, exchange: Exchange) -> None:
        await self._run(exchange)
        self.session.finish_offer(exchange, self.clock(), self.rng)
        self._publish()

    async def _run(self, exchange: Exchange) -> None:
        assert self._client is not None
        await run_exchange(exchange, self._client, self.objects, self._publish,
                           ingress=self.limits.ingress, clock=self.clock)


if TYPE_CHECKING:  # mypy checks that a Node is what each of its users takes it for
    _as_running_node: type[RunningNode] = Node
    _as_gossip_service: type[GossipService] = Node
    _as_served_node: type[ServedNode] = Node
