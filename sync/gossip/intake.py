"""Taking objects from peers into the store, and choosing which to ask for.

Blocking (SQLite, signature checks): the node runs these in a worker thread.
Every object is parsed and verified before it is stored; the store verifies
again and applies retractions. An object that is invalid in itself (bad id,
signature, format, limits) is the sender's fault; one the policy declines,
one its author withdrew, or one that conflicts with what we hold is not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from commons.model.errors import InvalidObject, Withdrawn
from commons.model.objects import SignedObject, parse
from commons.storage.store import ObjectStore, PutResult
from sync.gossip.policy import Declined, Policy
from sync.protocol.messages import Rejected

log = logging.getLogger(__name__)

# Declined ids with this reason are forgotten when the block list shrinks.
BLOCKED_REASON = "its author is blocked on this node"


@dataclass
class Intake:
    """What became of a batch of objects from a peer."""

    accepted: list[bytes] = field(default_factory=list)
    duplicate: int = 0
    declined: list[Rejected] = field(default_factory=list)
    refused: list[Rejected] = field(default_factory=list)
    received_ids: set[bytes] = field(default_factory=set)


def take_in(
    store: ObjectStore,
    lines: Iterable[bytes],
    *,
    clock: Callable[[], int],
    origin: str,
    policy: Policy,
    declined: Declined,
    expected: set[bytes] | None = None,
    blocked: frozenset[bytes] = frozenset(),
) -> Intake:
    """Verify, filter by policy and store each line's object; one bad line never stops the rest.

    Objects by `blocked` authors (the home's block list) are declined.
    """
    report = Intake()
    for line in lines:
        now = clock()
        try:
            obj = parse(line, now=now)
            if expected is not None and obj.id not in expected:
                raise InvalidObject(f"{obj.id.hex()[:16]}… was not asked for")
        except InvalidObject as exc:  # broken in itself: the sender's fault
            log.info("refused an object from %s: %s", origin, exc)
            report.refused.append(Rejected("", str(exc)))
            continue
        oid_hex = obj.id.hex()
        report.received_ids.add(obj.id)
        if obj.id in declined:  # declined or expired before: a push cannot bring it back
            report.declined.append(Rejected(oid_hex, "this node declined it before"))
            continue
        reason = BLOCKED_REASON if obj.author in blocked else policy.decide(obj, len(line))
        if reason is None and obj.kind in SUPERSEDED_KINDS:
            reason = _keep_newest(store, obj)
        if reason is not None:
            declined.add(obj.id, reason, now)
            report.declined.append(Rejected(oid_hex, reason))
            continue
        try:
            result = store.put(obj, now=now, origin=origin)
        except Withdrawn as exc:
            report.declined.append(Rejected(oid_hex, str(exc)))
            continue
        except InvalidObject as exc:
            # Sound in itself but at odds with what we hold (say, a retraction
            # of another author's document, which a peer that never saw the
            # document stores in good faith): not the sender's fault.
            declined.add(obj.id, str(exc), now)
            report.declined.append(Rejected(oid_hex, str(exc)))
            continue
        if result is PutResult.ADDED:
            report.accepted.append(obj.id)
        else:
            report.duplicate += 1
    return report


SUPERSEDED_KINDS = ("profile", "peer")


def _keep_newest(store: ObjectStore, obj: SignedObject) -> str | None:
    """Keep one profile and one peer record per author: decline older ones, drop older ones."""
    newest = store.newest_of(obj.author, obj.kind)
    mine = (obj.created_at, obj.id)
    if newest is None or newest == mine:  # the first, or one we hold (a duplicate)
        return None
    if newest > mine:
        return f"a newer {obj.kind} object by the same author is kept here"
    store.drop_older(obj.author, obj.kind, mine)
    return None


def wanted(store: ObjectStore, ids: Sequence[bytes], declined: Declined) -> list[bytes]:
    """Of `ids`, those we neither hold, nor hold a tombstone for, nor declined before."""
    return [
        oid for oid in ids
        if oid not in declined and not store.has(oid) and not store.is_withdrawn(oid)
    ]
