"""Peer records expire: the store keeps a bounded number of them (finding F9).

Peer records replicate like any object, and keys are free: without a bound a
stranger could fill every store with records from fresh keys. The store keeps
at most `max_records` of them. Records by kept keys (the node's own, proven
keys heard from recently, and keys that proved themselves at an address the
user named) never expire; of the rest the oldest go first. What expired is
remembered as declined (reason `EXPIRED_REASON`, the newest `max_remembered`),
so gossip does not fetch it back; a record newer than the one that expired has
another id and is judged afresh.

Blocking (SQLite): the node runs `expire_peer_records` in a worker thread.
Only peer records are ever deleted here: documents, profiles and retractions
are untouched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from commons.storage.store import ObjectStore
from sync.gossip.policy import Declined

log = logging.getLogger(__name__)

MAX_PEER_RECORDS = 512  # stored peer records (one per key: older ones are superseded)
MAX_REMEMBERED = 20_000  # ids of expired records remembered, so gossip does not refill
EXPIRED_REASON = "an expired peer record of an unproven or long-silent key"


@dataclass(frozen=True)
class Expired:
    """What one expiry removed."""

    ids: tuple[bytes, ...]
    authors: frozenset[bytes]


def expire_peer_records(store: ObjectStore, declined: Declined, *, keep: frozenset[bytes],
                        now: int, max_records: int = MAX_PEER_RECORDS,
                        max_remembered: int = MAX_REMEMBERED) -> Expired:
    """Delete the oldest peer records of keys not in `keep` beyond `max_records`."""
    records = store.peer_records()
    excess = len(records) - max_records
    if excess <= 0:
        return Expired((), frozenset())
    pool = sorted((r for r in records if r[1] not in keep), key=lambda r: (r[2], r[0]))
    gone = pool[:excess]
    if not gone:
        return Expired((), frozenset())
    ids = tuple(oid for oid, _, _ in gone)
    declined.add_many(ids, EXPIRED_REASON, now)  # first: were we stopped here, none return
    store.drop_peer_records(ids)
    declined.trim(EXPIRED_REASON, max_remembered)
    log.info("expired %d peer records of unproven or silent keys (%d kept)", len(ids),
             len(records) - len(ids))
    return Expired(ids, frozenset(author for _, author, _ in gone))
