"""How many objects (and bytes) may enter this node from each peer, and from all of them.

A flood is cheap to send and dear to take in: every object is parsed, verified,
stored and indexed. The request rate limit (`PeerLimits`) counts requests, and
one push carries up to 512 objects, so it cannot hold a flood back when the CPU
gives out first. The ingress budget counts the objects themselves and their
bytes, per peer key and for the whole node, with token buckets (capacity: the
amount per period; refilled evenly). It is checked before any object is
parsed: a push over budget gets `429` with `Retry-After`, an offer is answered
with fewer ids wanted, and a sync fetches fewer of what it lacks from that
peer; the rest comes later. Pure: the caller passes the time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sync.gossip.policy import Policy, RateLimit, rate_text


class Buckets:
    """Token buckets of one `limit`, one per key (the least recently seen forgotten first)."""

    def __init__(self, limit: RateLimit | None, *, max_keys: int = 10_000) -> None:
        self.limit = limit
        self._state: dict[str, tuple[float, float]] = {}  # key -> (tokens, last time)
        self._max_keys = max_keys

    def level(self, key: str, now: float) -> float:
        """Tokens in `key`'s bucket now (infinite without a limit; below 0 after an overdraft)."""
        if self.limit is None:
            return math.inf
        capacity = float(self.limit.amount)
        tokens, last = self._state.get(key, (capacity, now))
        return min(capacity, tokens + max(0.0, now - last) * capacity / self.limit.seconds)

    def wait(self, key: str, amount: int, now: float) -> float:
        """0.0 if `amount` may be spent now, else the seconds until it may.

        More than the whole bucket may be spent when the bucket is full, so
        one large batch is never refused forever.
        """
        if self.limit is None:
            return 0.0
        tokens = self.level(key, now)
        capacity = float(self.limit.amount)
        if tokens >= amount or tokens >= capacity:
            return 0.0
        return (min(amount, capacity) - tokens) * self.limit.seconds / capacity

    def spend(self, key: str, amount: int, now: float) -> None:
        """Take `amount` out (the bucket may go below zero: an overdraft waits longer)."""
        if self.limit is None:
            return
        state = (self.level(key, now) - amount, now)
        self._state.pop(key, None)
        self._state[key] = state
        while len(self._state) > self._max_keys:
            self._state.pop(next(iter(self._state)))


TOTAL = "*"  # the key of the node-wide buckets


@dataclass
class IngressCounts:
    """What the budget let in and held back since the node started (for /status)."""

    objects: int = 0
    bytes: int = 0
    throttled: int = 0  # pushes refused with 429, offers and fetches cut short
    held_back: int = 0  # objects not taken because of that (known for offers and fetches)


class IngressBudget:
    """Objects and bytes per window that may enter from one peer key, and from all peers."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._peer_objects = Buckets(policy.ingress_objects_per_peer)
        self._peer_bytes = Buckets(policy.ingress_bytes_per_peer)
        self._total_objects = Buckets(policy.ingress_objects_total, max_keys=1)
        self._total_bytes = Buckets(policy.ingress_bytes_total, max_keys=1)
        self.counts = IngressCounts()
        self._throttled_peers: dict[str, int] = {}  # peer -> times throttled (bounded)

    def allowance(self, peer: str, now: float) -> int:
        """How many objects `peer` may bring in now (0 while a byte budget is overdrawn)."""
        if self._peer_bytes.level(peer, now) <= 0 or self._total_bytes.level(TOTAL, now) <= 0:
            return 0
        level = min(self._peer_objects.level(peer, now), self._total_objects.level(TOTAL, now))
        if level == math.inf:
            return 1 << 30
        return max(0, math.floor(level))

    def closed_for(self, peer: str, now: float) -> float:
        """Seconds until `peer` may bring in anything at all (0.0 if it may now). Spends
        nothing, so it may be asked about a key before the request proves it holds it."""
        waits = [self._peer_objects.wait(peer, 1, now), self._total_objects.wait(TOTAL, 1, now)]
        for buckets, key in ((self._peer_bytes, peer), (self._total_bytes, TOTAL)):
            if buckets.level(key, now) <= 0:
                waits.append(buckets.wait(key, 1, now))
        return max(waits)

    def admit(self, peer: str, objects: int, size: int, now: float) -> float:
        """Spend the budget for a push of `objects` lines and `size` bytes: 0.0 if it may
        enter now, else the seconds to wait (nothing is spent then)."""
        wait = max(
            self._peer_objects.wait(peer, objects, now),
            self._total_objects.wait(TOTAL, objects, now),
            self._peer_bytes.wait(peer, size, now),
            self._total_bytes.wait(TOTAL, size, now),
        )
        if wait:
            self.throttled(peer, 0)
            return wait
        self.charge(peer, objects, size, now)
        return 0.0

    def charge(self, peer: str, objects: int, size: int, now: float) -> None:
        """Spend the budget for objects that are entering (a fetch within the allowance)."""
        self._peer_objects.spend(peer, objects, now)
        self._total_objects.spend(TOTAL, objects, now)
        self._peer_bytes.spend(peer, size, now)
        self._total_bytes.spend(TOTAL, size, now)
        self.counts.objects += objects
        self.counts.bytes += size

    def throttled(self, peer: str, held_back: int) -> None:
        """Note that `peer` was held back (`held_back` objects not taken, if known)."""
        self.counts.throttled += 1
        self.counts.held_back += held_back
        self._throttled_peers[peer] = self._throttled_peers.pop(peer, 0) + 1
        while len(self._throttled_peers) > 1000:
            self._throttled_peers.pop(next(iter(self._throttled_peers)))

    def describe(self) -> dict[str, Any]:
        """The budgets and what they did, as /status shows them."""
        policy = self.policy
        busiest = sorted(self._throttled_peers.items(), key=lambda kv: -kv[1])[:5]
        return {
            "objects_per_peer": rate_text(policy.ingress_objects_per_peer, ""),
            "bytes_per_peer": rate_text(policy.ingress_bytes_per_peer, "B"),
            "objects_total": rate_text(policy.ingress_objects_total, ""),
            "bytes_total": rate_text(policy.ingress_bytes_total, "B"),
            "admitted_objects": self.counts.objects,
            "admitted_bytes": self.counts.bytes,
            "throttled": self.counts.throttled,
            "held_back": self.counts.held_back,
            "throttled_peers": len(self._throttled_peers),
            "most_throttled": [{"peer": peer, "times": times} for peer, times in busiest],
        }
