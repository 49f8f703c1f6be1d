"""The node's membership work beside its rounds: proving addresses, expiring records.

Two background loops, driven by the sans-IO `GossipSession`'s decisions:

- proofs: unproven addresses (from peer records, or the LAN) are asked to
  prove their key (sync.protocol.proof) in `max_candidates` slots of their
  own, each try bounded by `PROOF_TIMEOUT`, with back-off after failures; they
  never hold a gossip slot, so a record naming a socket that never answers
  costs one short try now and then, not a round;
- expiry: after peer records arrive, the store keeps at most
  `max_peer_records` of them (sync.gossip.expiry).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Awaitable, Callable

from sync.gossip.expiry import MAX_PEER_RECORDS, expire_peer_records
from sync.gossip.session import GossipSession
from sync.http.client import PeerClient, PeerUnavailable
from sync.http.store_io import StoreIO
from sync.protocol.errors import RemoteProtocolError

log = logging.getLogger(__name__)

WAKE_SECONDS = 1.0  # the proof loop looks for candidates whose back-off ran out this often
EXPIRY_PAUSE = 0.5  # a burst of arriving records shares one expiry


class Membership:
    def __init__(
        self,
        session: GossipSession,
        objects: StoreIO,
        *,
        client: Callable[[], PeerClient],
        clock: Callable[[], int],
        rng: random.Random,
        changed: Callable[[], Awaitable[None]],
        max_peer_records: int = MAX_PEER_RECORDS,
    ) -> None:
        self.session = session
        self.objects = objects
        self._client = client
        self.clock = clock
        self.rng = rng
        self._changed = changed  # save the peer table, publish notices
        self.max_peer_records = max_peer_records
        self._proving: dict[str, asyncio.Task[bool]] = {}
        self._wake = asyncio.Event()
        self._records_arrived = asyncio.Event()

    # -- proofs -----------------------------------------------------------------

    def wake(self) -> None:
        """New candidates may be waiting (a record arrived, a proof ended)."""
        self._wake.set()

    async def prove_loop(self) -> None:
        while True:
            try:
                for peer in self.session.choose_candidates(self.clock(), self.rng,
                                                           busy=self._proving):
                    if peer.key is not None:
                        self._start_proof(peer.url, bytes.fromhex(peer.key))
            except Exception:  # a bug here must not end the proofs for good
                log.exception("choosing addresses to prove failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), WAKE_SECONDS)
            self._wake.clear()

    def _start_proof(self, url: str, key: bytes) -> None:
        task = asyncio.ensure_future(self.prove(url, key))
        self._proving[url] = task

        def done(_: asyncio.Task[bool]) -> None:
            self._proving.pop(url, None)
            self._wake.set()

        task.add_done_callback(done)

    async def prove(self, url: str, key: bytes) -> bool:
        """Ask the node at `url` to prove it holds `key`; True if it did."""
        error: str | None = None
        try:
            await self._client().prove(url, key, secrets.token_bytes(32))
        except (PeerUnavailable, RemoteProtocolError) as exc:
            error = str(exc)
        proven = self.session.proof_finished(url, key, error, self.clock(), self.rng)
        await self._changed()
        return proven

    async def prove_named(self, url: str) -> None:
        """After a good sync with a peer the user named: prove the key it claims."""
        if not self.session.needs_proof(url) or url in self._proving:
            return
        key = self._client().known_key(url)
        if key is not None and await self.prove(url, key):
            # Its record may have come before the proof: now it may name the peer.
            records = await asyncio.to_thread(self.objects.store.objects, kind="peer",
                                              author=key)
            for stored in records:
                self.session.table.learn(stored.obj, self.clock())
            await self._changed()

    async def stop(self) -> None:
        tasks = list(self._proving.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- expiry -------------------------------------------------------------------

    def record_arrived(self) -> None:
        self._records_arrived.set()

    async def expiry_loop(self) -> None:
        while True:
            await self._records_arrived.wait()
            await asyncio.sleep(EXPIRY_PAUSE)
            self._records_arrived.clear()
            try:
                await self.expire()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("expiring peer records failed")

    async def expire(self) -> int:
        """Keep at most `max_peer_records` peer records; returns how many expired."""
        keep = self.session.kept_keys(self.clock())
        declined = self.objects.declined
        if declined is None:
            return 0
        expired = await asyncio.to_thread(
            expire_peer_records, self.objects.store, declined, keep=keep, now=self.clock(),
            max_records=self.max_peer_records)
        if expired.ids:
            self.objects.changed()
            self.session.records_expired(expired.authors)
            await self._changed()
        return len(expired.ids)
