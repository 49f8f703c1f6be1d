"""Peer records expire from the store (sync.gossip.expiry): real SQLite, no sockets."""

from __future__ import annotations

from commons.model.identity import Identity
from commons.model.objects import Document, PeerRecord, Profile, sign
from commons.storage.store import ObjectStore
from sync.gossip import intake
from sync.gossip.expiry import EXPIRED_REASON, expire_peer_records
from sync.gossip.policy import Declined, Policy

NOW = 1_800_000_000


def key(i: int) -> Identity:
    return Identity((7000 + i).to_bytes(32, "big"))


def record_line(i: int) -> bytes:
    who = key(i)
    return sign(PeerRecord(author=who.public_key, created_at=NOW - 1000 + i,
                           addresses=(f"http://127.0.0.1:{3000 + i}",), name=f"n{i}"),
                who).to_bytes()


def test_the_oldest_records_of_unkept_keys_expire_and_nothing_else(
    store: ObjectStore, alice: Identity
) -> None:
    store.put(sign(Document(author=alice.public_key, created_at=NOW - 5000, title="Wells",
                            body="Deep wells."), alice), now=NOW)
    store.put(sign(Profile(author=alice.public_key, created_at=NOW - 5000, name="Alice"),
                   alice), now=NOW)
    for i in range(40):
        store.put(sign(PeerRecord(author=key(i).public_key, created_at=NOW - 1000 + i,
                                  addresses=(f"http://127.0.0.1:{3000 + i}",), name=f"n{i}"),
                       key(i)), now=NOW)
    declined = Declined(store, Policy())
    keep = frozenset({key(0).public_key, key(1).public_key})  # proven: kept though oldest
    gone = expire_peer_records(store, declined, keep=keep, now=NOW, max_records=10,
                               max_remembered=25)
    assert len(gone.ids) == 30
    assert gone.authors == {key(i).public_key for i in range(2, 32)}
    left = {author for _, author, _ in store.peer_records()}
    assert left == {key(i).public_key for i in [0, 1, *range(32, 40)]}
    assert store.count("document") == 1 and store.count("profile") == 1
    # Remembered (the newest 25 of the expired), so gossip does not bring them back.
    assert len(declined) == 25
    assert all(oid in declined for oid in gone.ids[-25:])
    report = intake.take_in(store, [record_line(31)], clock=lambda: NOW, origin="key:x",
                            policy=Policy(), declined=declined)
    assert report.accepted == [] and len(report.declined) == 1
    assert store.count("peer") == 10
    # Under the bound, nothing expires.
    again = expire_peer_records(store, declined, keep=keep, now=NOW, max_records=10)
    assert again.ids == () and declined.forget(EXPIRED_REASON) == 25
