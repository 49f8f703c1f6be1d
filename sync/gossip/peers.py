"""The peer table: who we know, how they have behaved, whom to talk to next.

Peers come from the command line (bootstrap), from `peers add` (manual), and
from signed `peer` records, which replicate like any object: that is how peer
exchange works, so a node that knows one neighbour soon knows the neighbour's
neighbours. But anyone can sign a record naming any address: an address learnt
from a record (or announced on the LAN) is only a *candidate* until the node
there proves it holds the record's key (sync.protocol.proof). Candidates never
take outbound slots; they are tried in a few proof slots of their own. Each
peer has a health score that rises with good syncs and falls
with failures, an exponential back-off after failures, and a count of faults
(invalid objects it served); after a few faults it is dropped.

Every decision here is pure: callers pass the time and the random generator.
The table lives in memory; `pending_rows()` hands out what changed so the
caller can write it to SQLite off the event loop (`save_rows`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from commons.model.objects import PeerRecord, SignedObject
from sync.gossip.peer_rows import (
    MAX_FAULTS,
    NAMED,
    NEW_HEALTH,
    SILENT_SECONDS,
    SOURCES,
    STATES,
    PeerInfo,
    PeerUrlError,
    backoff_delay,
    load_rows,
    normalise_url,
    save_rows,
)

__all__ = ["PeerInfo", "PeerTable", "PeerUrlError", "backoff_delay", "load_rows",
           "normalise_url", "save_rows", "weighted_sample"]


class PeerTable:
    """Known peers and the pure decisions about them."""

    def __init__(
        self,
        rows: Iterable[PeerInfo] = (),
        *,
        own_urls: Iterable[str] = (),
        own_key: bytes | None = None,
        max_known: int = 256,
        max_outbound: int = 8,
        max_candidates: int = 2,
        max_faults: int = MAX_FAULTS,
        refuse: Callable[[str], bool] | None = None,
    ) -> None:
        self._peers: dict[str, PeerInfo] = {p.url: p for p in rows}
        self._refuse = refuse  # e.g. the policy's block list: never add these
        self._own_urls = {normalise_url(u) for u in own_urls}
        self._own_key = own_key.hex() if own_key else None
        self.max_known = max_known
        self.max_outbound = max_outbound
        self.max_candidates = max_candidates  # proof slots for unproven addresses
        self.max_faults = max_faults
        self._outbound: list[str] = []
        self._dirty: set[str] = set()
        self._deleted: set[str] = set()

    # -- reading --------------------------------------------------------------

    def get(self, url: str) -> PeerInfo | None:
        return self._peers.get(url)

    def all(self) -> list[PeerInfo]:
        order = {s: i for i, s in enumerate(STATES)}
        return sorted(self._peers.values(), key=lambda p: (order[p.state], -p.health, p.url))

    def active(self) -> list[PeerInfo]:
        return [p for p in self.all() if p.state == "active"]

    def eligible(self, now: float) -> list[PeerInfo]:
        """Active peers whose back-off has run out."""
        return [p for p in self.active() if p.next_attempt <= now]

    def is_own(self, url: str) -> bool:
        return url in self._own_urls

    def set_own_urls(self, urls: Iterable[str]) -> None:
        self._own_urls = {normalise_url(u) for u in urls}
        for url in list(self._peers):
            if url in self._own_urls:
                self._delete(url)

    # -- changing -------------------------------------------------------------

    def _put(self, peer: PeerInfo) -> None:
        self._peers[peer.url] = peer
        self._dirty.add(peer.url)
        self._deleted.discard(peer.url)

    def _delete(self, url: str) -> None:
        if self._peers.pop(url, None) is not None:
            self._deleted.add(url)
        self._dirty.discard(url)
        if url in self._outbound:
            self._outbound.remove(url)

    def add(
        self,
        url: str,
        *,
        source: str,
        now: int,
        name: str | None = None,
        mirror: bool = False,
        key: str | None = None,
        record_at: int = 0,
    ) -> PeerInfo | None:
        """Learn of a peer. Returns it, or None if it is us or was dropped/removed.

        A peer the user removed, or one dropped for faults, comes back only
        when the user adds it by hand; a record or a bootstrap list cannot
        bring it back.
        """
        if source not in SOURCES:
            raise ValueError(f"unknown peer source {source!r}")
        url = normalise_url(url)
        if url in self._own_urls or (key is not None and key == self._own_key):
            return None
        if self._refuse is not None and self._refuse(url):
            return None
        known = self._peers.get(url)
        if known is None:
            peer = PeerInfo(url=url, name=name, last_seen=None, health=NEW_HEALTH, sent=0,
                            received=0, failures=0, mirror=mirror, source=source, key=key,
                            added_at=now, record_at=record_at)
            self._put(peer)
            self._prune()
            return self._peers.get(url)
        if known.state != "active" and source != "manual":
            return None
        changes: dict[str, Any] = {}
        if source == "manual":
            changes.update(state="active", faults=0, failures=0, next_attempt=0.0)
            if known.source == "record":
                changes["source"] = "manual"
        elif source == "bootstrap" and known.source == "record":
            changes["source"] = "bootstrap"
        # A record by one key never rebinds an address another key's record
        # named, nor one the user named (its key comes only from a proof):
        # else any stranger could take over (and then forget) a peer.
        if known.source in NAMED or known.proven_at:
            same_key = key is None or known.key == key
        else:
            same_key = known.key is None or key is None or known.key == key
        if (same_key and record_at >= known.record_at
                and (name, mirror, key) != (None, False, None)):
            changes.update(name=name or known.name, mirror=mirror, key=key or known.key,
                           record_at=record_at)
        if changes.get("key") is None or known.source in NAMED:
            changes.pop("key", None)
        if changes:
            self._put(replace(known, **changes))
        return self._peers[url]

    def learn(self, obj: SignedObject, now: int) -> list[PeerInfo]:
        """Take in a signed peer record: its addresses become peers.

        A newer record from the same key supersedes older ones: addresses it no
        longer lists are forgotten (unless the user added them by hand).
        """
        content = obj.content
        if not isinstance(content, PeerRecord) or obj.author.hex() == self._own_key:
            return []
        key = obj.author.hex()
        newest = max((p.record_at for p in self._peers.values() if p.key == key), default=-1)
        if obj.created_at < newest:
            return []
        learnt = []
        addresses = set()
        for address in content.addresses:
            try:
                addresses.add(normalise_url(address))
            except PeerUrlError:
                continue
            peer = self.add(address, source="record", now=now, name=content.name,
                            mirror=content.mirror, key=key, record_at=obj.created_at)
            if peer is not None and peer.key == key:
                learnt.append(peer)
        for peer in list(self._peers.values()):
            if peer.key == key and peer.url not in addresses and peer.source == "record":
                self._delete(peer.url)
        return learnt

    def remove(self, url: str) -> bool:
        """The user removed a peer; remember that so records do not bring it back."""
        url = normalise_url(url)
        peer = self._peers.get(url)
        if peer is None or peer.state == "removed":
            return False
        self._put(replace(peer, state="removed"))
        if url in self._outbound:
            self._outbound.remove(url)
        return True

    def success(self, url: str, now: int, *, sent: int = 0, received: int = 0) -> None:
        peer = self._peers.get(url)
        if peer is None:
            return
        self._put(replace(peer, last_seen=now, failures=0, next_attempt=0.0,
                          health=round(peer.health * 0.7 + 0.3, 4), sent=peer.sent + sent,
                          received=peer.received + received))

    def proven(self, url: str, key: str, now: int) -> bool:
        """The node at `url` proved it holds `key`: the address may now take outbound slots.

        Only the key the row already names counts, except for an address the
        user named, whose key the proof itself tells. Returns True if it did.
        """
        peer = self._peers.get(url)
        if peer is None or peer.state != "active":
            return False
        if peer.source not in NAMED and peer.key != key:
            return False
        self._put(replace(peer, key=key, proven_at=now, last_seen=now, failures=0,
                          next_attempt=0.0, health=round(peer.health * 0.7 + 0.3, 4)))
        return True

    def candidates(self, now: float, rng: random.Random, k: int,
                   exclude: Iterable[str] = ()) -> list[PeerInfo]:
        """Up to k unproven addresses to try to prove now: fewest failures first."""
        skip = set(exclude)
        pool = [p for p in self.eligible(now) if p.candidate and p.url not in skip]
        rng.shuffle(pool)
        pool.sort(key=lambda p: p.failures)
        return pool[:k]

    def heard_from(self, key: str) -> None:
        """A signed request by `key` reached us: its proven addresses are up again,
        so their back-off ends (health and counts stay as they are)."""
        for peer in list(self._peers.values()):
            if peer.key == key and peer.proven_at and peer.failures and peer.state == "active":
                self._put(replace(peer, failures=0, next_attempt=0.0))

    def kept_keys(self, now: int, silent_after: int = SILENT_SECONDS) -> frozenset[bytes]:
        """Keys whose peer records the store keeps: those of addresses the user
        named, and proven keys heard from within `silent_after` seconds."""
        keys = set()
        for p in self._peers.values():
            if p.key is None or p.state != "active":
                continue
            heard = max(p.last_seen or 0, p.proven_at)
            if p.proven_at and (p.source in NAMED or heard >= now - silent_after):
                keys.add(bytes.fromhex(p.key))
        return frozenset(keys)

    def forget_keys(self, keys: Iterable[bytes]) -> int:
        """Forget the addresses learnt from these keys' records (their records expired)."""
        gone = {k.hex() for k in keys}
        urls = [p.url for p in self._peers.values()
                if p.key in gone and p.source not in NAMED and p.state == "active"]
        for url in urls:
            self._delete(url)
        return len(urls)

    def failure(self, url: str, now: int, rng: random.Random) -> float:
        """A peer could not be reached or refused us; returns the back-off in seconds."""
        peer = self._peers.get(url)
        if peer is None:
            return 0.0
        failures = peer.failures + 1
        delay = backoff_delay(failures, rng)
        self._put(replace(peer, failures=failures, next_attempt=now + delay,
                          health=round(peer.health * 0.7, 4)))
        return delay

    def fault(self, url: str, now: int) -> bool:
        """A peer served an invalid object. Returns True if it is now dropped."""
        peer = self._peers.get(url)
        if peer is None:
            return False
        faults = peer.faults + 1
        dropped = faults >= self.max_faults
        self._put(replace(peer, faults=faults, health=round(peer.health * 0.4, 4),
                          state="dropped" if dropped else peer.state))
        if dropped and url in self._outbound:
            self._outbound.remove(url)
        return dropped

    def count_sent(self, url: str, sent: int) -> None:
        peer = self._peers.get(url)
        if peer is not None and sent:
            self._put(replace(peer, sent=peer.sent + sent))

    def count_received(self, url: str, received: int) -> None:
        peer = self._peers.get(url)
        if peer is not None and received:
            self._put(replace(peer, received=peer.received + received))

    def _prune(self) -> None:
        """Keep at most max_known peers learnt from records; forget the least healthy."""
        learnt = [p for p in self._peers.values() if p.source == "record"]
        excess = len(self._peers) - self.max_known
        if excess <= 0:
            return
        learnt.sort(key=lambda p: (p.state == "active", p.proven_at > 0, p.health,
                                   p.last_seen or 0))
        for peer in learnt[:excess]:
            self._delete(peer.url)

    # -- choosing -------------------------------------------------------------

    def outbound(self, now: float, rng: random.Random) -> list[str]:
        """The bounded set of peers we gossip with, refilled as members fail.

        Only trusted peers (named by the user, or proven) are members: an
        address a record merely claims never takes a slot. Members that are
        dropped, removed, or have failed several times in a row give up their
        slot; free slots go first to peers the user named (reserved), then to
        proven mirrors, then to other proven peers at random, weighted by health.
        """
        keep = []
        for url in self._outbound:
            peer = self._peers.get(url)
            if peer is not None and peer.state == "active" and peer.trusted and peer.failures < 3:
                keep.append(url)
        self._outbound = keep
        free = self.max_outbound - len(keep)
        if free > 0:
            candidates = [p for p in self.eligible(now) if p.url not in keep and p.trusted]
            named = [p for p in candidates if p.source in NAMED]
            mirrors = [p for p in candidates if p.source not in NAMED and p.mirror]
            others = [p for p in candidates if p.source not in NAMED and not p.mirror]
            rng.shuffle(named)
            rng.shuffle(mirrors)
            preferred = named + mirrors
            chosen = preferred[:free]
            chosen += weighted_sample(others, free - len(chosen), rng)
            self._outbound.extend(p.url for p in chosen)
        return list(self._outbound)

    def choose(self, now: float, rng: random.Random, k: int, exclude: Iterable[str] = ()) -> list[
        PeerInfo
    ]:
        """Up to k outbound peers to contact now, weighted by health."""
        skip = set(exclude)
        members = [self._peers[u] for u in self.outbound(now, rng)]
        candidates = [p for p in members if p.next_attempt <= now and p.url not in skip]
        return weighted_sample(candidates, k, rng)

    # -- persistence ----------------------------------------------------------

    def pending_rows(self) -> tuple[list[PeerInfo], list[str]]:
        """Changed and deleted rows since the last call, for `save_rows`."""
        rows = [self._peers[u] for u in sorted(self._dirty) if u in self._peers]
        deleted = sorted(self._deleted)
        self._dirty.clear()
        self._deleted.clear()
        return rows, deleted


def weighted_sample(peers: Sequence[PeerInfo], k: int, rng: random.Random) -> list[PeerInfo]:
    """k distinct peers, each drawn with weight health (+ a floor, + a bonus for mirrors)."""
    pool = list(peers)
    chosen: list[PeerInfo] = []
    while pool and len(chosen) < k:
        weights = [0.05 + p.health + (0.25 if p.mirror else 0.0) for p in pool]
        pick = rng.choices(range(len(pool)), weights=weights)[0]
        chosen.append(pool.pop(pick))
    return chosen
