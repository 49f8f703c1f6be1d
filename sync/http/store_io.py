"""The object store as the gossip uses it, every call off the event loop.

SQLite and signature checks block, so each call runs in a worker thread. The
(created_at, id) set a reconciliation needs is kept until the store changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from commons.storage.store import ObjectStore
from sync.gossip import intake
from sync.gossip.policy import Declined, Policy
from sync.protocol.negentropy import SortedItems


class StoreIO:
    def __init__(self, store: ObjectStore, policy: Policy, clock: Callable[[], int]) -> None:
        self.store = store
        self.policy = policy
        self.clock = clock
        self.declined: Declined | None = None  # loaded by `open`
        self._generation = 0
        self._items: tuple[int, SortedItems] | None = None
        self._items_lock = asyncio.Lock()
        self._facts: tuple[int, tuple[str | None, dict[str, int], int]] | None = None
        self._facts_lock = asyncio.Lock()

    async def open(self) -> None:
        """Load what this node declined under its policy before."""
        def load() -> Declined:
            declined = Declined(self.store, self.policy)
            declined.forget(intake.BLOCKED_REASON)  # the block list may have changed since
            return declined

        self.declined = await asyncio.to_thread(load)

    def _declined(self) -> Declined:
        if self.declined is None:
            raise RuntimeError("StoreIO.open() has not run")
        return self.declined

    def changed(self) -> None:
        """The store changed (called from whichever thread wrote to it)."""
        self._generation += 1

    async def sorted_items(self) -> SortedItems:
        """Our (created_at, id) set, rebuilt only after the store changed."""
        cache = self._items
        if cache is not None and cache[0] == self._generation:
            return cache[1]
        async with self._items_lock:
            generation = self._generation
            cache = self._items
            if cache is not None and cache[0] == generation:
                return cache[1]
            items = await asyncio.to_thread(lambda: SortedItems(self.store.items()))
            self._items = (generation, items)
            return items

    async def wanted(self, ids: Sequence[bytes]) -> list[bytes]:
        """Of `ids`, those we neither hold, nor hold a tombstone for, nor declined."""
        return await asyncio.to_thread(intake.wanted, self.store, ids, self._declined())

    async def take_in(self, lines: Sequence[bytes], *, origin: str,
                      expected: set[bytes] | None) -> intake.Intake:
        def run() -> intake.Intake:
            return intake.take_in(
                self.store, lines, clock=self.clock, origin=origin, policy=self.policy,
                declined=self._declined(), expected=expected, blocked=self.store.blocked_keys(),
            )

        return await asyncio.to_thread(run)

    async def unblocked(self) -> None:
        """The block list shrank: fetch what it made us decline again."""
        await asyncio.to_thread(self._declined().forget, intake.BLOCKED_REASON)

    async def sizes(self, ids: Sequence[bytes]) -> list[tuple[bytes, int]]:
        return await asyncio.to_thread(self.store.sizes, ids)

    async def raw_objects(self, ids: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
        """Stored objects among `ids`, leaving out those by blocked authors."""
        def run() -> list[tuple[bytes, bytes]]:
            hidden = self.store.blocked_keys() | self.policy.block
            rows = self.store.raw_objects(ids, skip_authors=hidden)
            # Verified again before they leave: a flipped bit on disk must not make
            # honest peers count us as a liar. A bad one is moved aside, and the
            # next reconciliation fetches a good copy.
            good, bad = self.store.verified_raw(rows)
            for oid, reason in bad:
                self.store.quarantine(oid, reason, now=self.clock())
            return good

        return await asyncio.to_thread(run)

    async def facts(self, author: bytes) -> tuple[str | None, dict[str, int], int]:
        """`author`'s display name, the count of each kind and of quarantined objects,
        as /status shows them.

        Worked out in a thread and kept until the store changes, so pollers of
        /status cost the loop nothing and the store one query per change.
        """
        cache = self._facts
        if cache is not None and cache[0] == self._generation:
            return cache[1]
        async with self._facts_lock:
            generation = self._generation
            cache = self._facts
            if cache is not None and cache[0] == generation:
                return cache[1]
            facts = await asyncio.to_thread(
                lambda: (self.store.display_name(author), self.store.count_by_kind(),
                         len(self.store.quarantined())))
            self._facts = (generation, facts)
            return facts
