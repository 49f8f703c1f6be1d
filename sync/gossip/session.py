"""One node's gossip decisions, without IO: whom to talk to, and what came of it.

`GossipSession` holds what a node knows about gossip (the peer table, fresh
objects waiting to be offered, the ids each peer declined, the rounds so far)
and makes every decision about it: which peers a round or an offer goes to,
whether a sync may start, what an exchange's outcome does to a peer's
standing (back-off after failures, faults and dropping after invalid objects),
which new peer records teach us of peers. Each exchange itself is an
`Exchange` (sync.gossip.exchange). What happened comes out as `Notice`s.

Nothing here touches a socket, a thread, the store or the clock: callers pass
the time and the random generator in. `sync.http.node.Node` drives it.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from commons.model.objects import SignedObject
from sync.gossip.budget import IngressBudget
from sync.gossip.exchange import Exchange, Notice, Outcome
from sync.gossip.peers import PeerInfo, PeerTable, PeerUrlError, normalise_url
from sync.gossip.policy import Policy, RateLimiter
from sync.protocol.errors import LocalProtocolError
from sync.protocol.messages import MAX_IDS
from sync.protocol.negentropy import SortedItems

log = logging.getLogger(__name__)

FRESH_SECONDS = 600  # objects younger than this are offered eagerly when they arrive


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


class PeerLimits:
    """Which requests from an address to serve now: the block list and the rate limits."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._requests = RateLimiter(policy.request_rate)
        self._bytes = RateLimiter(policy.byte_rate)
        self.ingress = IngressBudget(policy)  # objects that may enter, per peer key and in all

    def blocks(self, remote: str) -> bool:
        return self.policy.blocks_peer(remote)

    def admit(self, remote: str, size: int | None, now: float) -> float:
        """0.0 to serve a request of `size` bytes now, else the seconds to wait."""
        wait = self._requests.take(remote, 1, now)
        if not wait and size:
            wait = self._bytes.take(remote, size, now)
        return wait

    def charge(self, remote: str, size: int, now: float) -> None:
        """Count the bytes of an answer against the address's byte limit."""
        self._bytes.take(remote, size, now)


class GossipSession:
    """The gossip state of one node and every decision about it."""

    def __init__(
        self,
        policy: Policy,
        *,
        own_key: bytes | None = None,
        fanout: int = 3,
        offer_fanout: int = 2,
        max_outbound: int = 8,
        max_candidates: int = 2,
        eager: bool = True,
    ) -> None:
        self.policy = policy
        self.own_key = own_key
        self.fanout = fanout
        self.offer_fanout = offer_fanout
        self.max_outbound = max_outbound
        self.max_candidates = max_candidates
        self.eager = eager  # offer fresh objects at once, not only in rounds
        self.live = False  # the driver is serving and gossiping: fresh objects are offered
        self.rounds = 0
        self.last_round: int | None = None
        self.table = self._new_table(())
        self._declined_by: dict[str, set[bytes]] = {}
        self._fresh: list[tuple[bytes, str]] = []  # (id, origin), oldest first
        self._notices: list[Notice] = []

    def _new_table(self, rows: Iterable[PeerInfo]) -> PeerTable:
        return PeerTable(rows, own_key=self.own_key, max_outbound=self.max_outbound,
                         max_candidates=self.max_candidates, refuse=self.policy.blocks_peer)

    def load_peers(self, rows: Iterable[PeerInfo], *, bootstrap: Sequence[str],
                   records: Iterable[SignedObject], now: int) -> None:
        """The saved peer table, the peers named at start, and the peer records we hold."""
        table = self._new_table(rows)
        for url in bootstrap:
            table.add(url, source="bootstrap", now=now)
        for obj in records:
            table.learn(obj, now)
        self.table = table

    def take_notices(self) -> list[Notice]:
        notices, self._notices = self._notices, []
        return notices

    def _notice(self, kind: str, message: str, peer: str | None = None) -> None:
        self._notices.append(Notice(kind, message, peer))

    # -- syncing ----------------------------------------------------------------

    def choose_round(self, now: int, rng: random.Random, *, busy: Iterable[str] = ()) -> list[str]:
        """The peers to sync with this round (not those a sync is already running with)."""
        return [p.url for p in self.table.choose(now, rng, self.fanout, exclude=busy)]

    def round_finished(self, now: int) -> None:
        self.rounds += 1
        self.last_round = now

    def refusal(self, url: str) -> str | None:
        """Why we will not sync with `url` (a normalised URL), or None."""
        if self.table.is_own(url):
            return f"{url} is this node itself"
        if self.policy.blocks_peer(url):
            return "this node's policy blocks that peer"
        return None

    def start_sync(self, url: str, items: SortedItems) -> Exchange:
        """A sync with `url` from our current (created_at, id) set."""
        return Exchange.sync(url, items, skip=self._declined_by.setdefault(url, set()))

    def finish_sync(self, exchange: Exchange, now: int, rng: random.Random) -> SyncResult:
        """What a finished sync does to the peer's standing, and what it moved."""
        self._check_finished(exchange, "sync")
        url, table = exchange.url, self.table
        error: str | None = None
        if exchange.outcome is Outcome.UNAVAILABLE:
            error = exchange.reason or "unavailable"
            delay = table.failure(url, now, rng)
            self._notice("unreachable", f"{error}; next try in {delay:.0f}s", url)
        elif exchange.outcome is Outcome.MISBEHAVED:
            error = f"{url} misbehaved: {exchange.reason}"
            dropped = table.fault(url, now)
            self._notice("fault", error, url)
            if dropped:
                self._notice("dropped", f"dropped {url} after {table.max_faults} faults", url)
        else:
            table.success(url, now, sent=exchange.pushed, received=exchange.fetched)
            self._notice("sync", f"{url}: fetched {exchange.fetched}, pushed {exchange.pushed},"
                                 f" {exchange.round_trips} round trips", url)
        return SyncResult(url, exchange.fetched, exchange.pushed, exchange.round_trips, error,
                          exchange.declined, exchange.refused)

    def finish_offer(self, exchange: Exchange, now: int, rng: random.Random) -> None:
        """What a finished offer does to the peer's standing."""
        self._check_finished(exchange, "offer")
        url = exchange.url
        if exchange.outcome is Outcome.UNAVAILABLE:
            self.table.failure(url, now, rng)
            log.info("offer to %s failed: %s", url, exchange.reason)
        elif exchange.outcome is Outcome.MISBEHAVED:
            self.table.fault(url, now)  # no "dropped" notice: the next sync reports that
            self._notice("fault", f"{url} answered an offer wrongly: {exchange.reason}", url)
        elif exchange.wanted:
            self.table.count_sent(url, exchange.pushed)
            self._notice("offered", f"{exchange.pushed} fresh objects to {url}", url)

    @staticmethod
    def _check_finished(exchange: Exchange, kind: str) -> None:
        if exchange.kind != kind or not exchange.finished:
            raise LocalProtocolError(f"finish_{kind}() needs a finished {kind}, not"
                                     f" {'a finished' if exchange.finished else 'an unfinished'}"
                                     f" {exchange.kind}")

    # -- address proofs and expiry ------------------------------------------------

    def choose_candidates(self, now: int, rng: random.Random, *,
                          busy: Iterable[str] = ()) -> list[PeerInfo]:
        """Unproven addresses to try to prove now, in the free proof slots."""
        busy = set(busy)
        free = self.table.max_candidates - len(busy)
        return self.table.candidates(now, rng, free, exclude=busy) if free > 0 else []

    def needs_proof(self, url: str) -> bool:
        """A peer the user named whose key no proof has shown yet."""
        peer = self.table.get(url)
        return peer is not None and peer.trusted and not peer.proven_at

    def proof_finished(self, url: str, key: bytes, error: str | None, now: int,
                       rng: random.Random) -> bool:
        """What a proof attempt at `url` for `key` came to. True if it proved the key."""
        if error is None:
            if self.table.proven(url, key.hex(), now):
                self._notice("peer", f"{url} proved it holds key {key.hex()[:16]}…", url)
                return True
            return False
        peer = self.table.get(url)
        if peer is not None and peer.candidate:  # a named peer loses nothing by it
            delay = self.table.failure(url, now, rng)
            log.info("%s did not prove key %s…: %s; next try in %.0fs", url, key.hex()[:16],
                     error, delay)
        return False

    def heard_from(self, sender: bytes | None) -> None:
        """A request signed by `sender` reached us (see PeerTable.heard_from)."""
        if sender is not None:
            self.table.heard_from(sender.hex())

    def kept_keys(self, now: int) -> frozenset[bytes]:
        """Keys whose peer records never expire (sync.gossip.expiry)."""
        own = frozenset([self.own_key]) if self.own_key else frozenset()
        return self.table.kept_keys(now) | own

    def records_expired(self, authors: Iterable[bytes]) -> None:
        """These keys' peer records expired: forget the addresses they named."""
        self.table.forget_keys(authors)

    # -- fresh objects and offers -----------------------------------------------

    def object_added(self, obj: SignedObject, origin: str, now: int) -> bool:
        """A new object reached the store. True if it now waits to be offered."""
        if obj.kind == "peer":
            for peer in self.table.learn(obj, now):
                if peer.added_at == now and peer.last_seen is None:
                    self._notice("peer", f"learnt of {peer.name or 'a peer'} at {peer.url}",
                                 peer.url)
        if self.live and self.eager and obj.created_at >= now - FRESH_SECONDS:
            self._fresh.append((obj.id, origin))
            return True
        return False

    @property
    def has_fresh(self) -> bool:
        return bool(self._fresh)

    def plan_offers(self, now: int, rng: random.Random) -> list[Exchange]:
        """Offer the next batch of fresh objects to a few peers, never back to their origin."""
        batch, self._fresh = self._fresh[:MAX_IDS], self._fresh[MAX_IDS:]
        if not batch:
            return []
        origins = {origin for _, origin in batch}
        chosen = self.table.choose(now, rng, self.offer_fanout,
                                   exclude=origins if len(origins) == 1 else ())
        offers = []
        for peer in chosen:
            ids = [oid for oid, origin in batch if origin != peer.url]
            if ids:  # what it declines is remembered, so syncs stop pushing it
                offers.append(Exchange.offer(peer.url, ids,
                                             skip=self._declined_by.setdefault(peer.url, set())))
        return offers

    # -- the serving side -------------------------------------------------------

    def served(self, peer: str | None, count: int) -> None:
        """We answered a fetch from `peer` (the URL it claims, if any) with `count` objects."""
        if peer and count:
            with contextlib.suppress(PeerUrlError):
                self.table.count_sent(normalise_url(peer), count)

    def origin_of(self, sender: bytes | None, claimed: str | None, remote: str) -> str:
        """Whom to credit (or blame) for what a request brought.

        The URL a request claims counts only if our table binds it to the key
        that signed the request; else the key itself (or, unsigned, the address).
        """
        if sender is None:
            return f"peer:{remote}"
        if claimed:
            with contextlib.suppress(PeerUrlError):
                url = normalise_url(claimed)
                peer = self.table.get(url)
                if peer is not None and peer.key == sender.hex():
                    return url
        return f"key:{sender.hex()}"

    def pushed_to_us(self, origin: str, accepted: int, refused: Sequence[str]) -> None:
        """A peer pushed objects: `accepted` were new, `refused` (reasons) were invalid."""
        if accepted:
            self._notice("received", f"{accepted} objects pushed by {origin}", origin)
            self.table.count_received(origin, accepted)
        if refused:
            self._notice("refused", f"{len(refused)} invalid objects pushed by {origin}:"
                                    f" {refused[0]}", origin)

    # -- peers by hand ------------------------------------------------------------

    def add_peer(self, url: str, now: int) -> PeerInfo:
        """The user adds a peer (which forgives one that was dropped)."""
        if self.policy.blocks_peer(normalise_url(url)):
            raise PeerUrlError(f"this node's policy blocks {url}; edit block_peers to allow it")
        peer = self.table.add(url, source="manual", now=now)
        if peer is None:
            raise PeerUrlError(f"{url} is this node itself")
        self._notice("peer", f"added {peer.url}", peer.url)
        return peer

    def discovered(self, url: str, *, key: str, name: str | None, mirror: bool,
                   now: int) -> bool:
        """A node announced itself on the LAN: a candidate peer, not yet proven to hold
        `key`. True if it is new to the table."""
        if self.policy.blocks_peer(normalise_url(url)):
            return False
        known = url in {p.url for p in self.table.all()}
        peer = self.table.add(url, source="discovered", now=now, name=name, mirror=mirror,
                              key=key)
        if peer is None or known:
            return False
        self._notice("peer", f"discovered {peer.url} on the LAN", peer.url)
        return True

    def remove_peer(self, url: str) -> bool:
        removed = self.table.remove(url)
        if removed:
            self._notice("peer", f"removed {normalise_url(url)}", normalise_url(url))
        return removed

    def peer_counts(self) -> dict[str, int]:
        """The peers part of /status."""
        peers = self.table.all()
        return {
            "known": len(peers),
            "active": sum(p.state == "active" for p in peers),
            "dropped": sum(p.state == "dropped" for p in peers),
            "healthy": sum(p.state == "active" and p.failures == 0 and p.last_seen is not None
                           for p in peers),
            "trusted": sum(p.state == "active" and p.trusted for p in peers),
            "candidates": sum(p.state == "active" and p.candidate for p in peers),
        }
