"""The object store: idempotent verified puts, ranges, retractions, versions, migrations."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from commons.model.errors import AmbiguousId, InvalidObject, NotFound, StoreError, Withdrawn
from commons.model.identity import Identity
from commons.model.objects import Document, Profile, Retraction, SignedObject, sign
from commons.storage.schema import MIGRATIONS
from commons.storage.store import Added, ObjectStore, PutResult, Removed

NOW = 1_800_000_000


def make_doc(key: Identity, title: str = "A", *, at: int = NOW, **kw: object) -> SignedObject:
    return sign(
        Document(author=key.public_key, created_at=at, title=title, body=f"Body of {title}.", **kw),  # type: ignore[arg-type]
        key,
    )


def fingerprint(path: Path) -> str:
    """Hash of the database and its write-ahead log, byte for byte."""
    h = hashlib.sha256()
    for suffix in ("", "-wal"):
        f = Path(str(path) + suffix)
        h.update(f.read_bytes() if f.exists() else b"-")
    return h.hexdigest()


def test_put_is_idempotent_and_get_returns_the_same_object(
    store: ObjectStore, alice: Identity
) -> None:
    obj = make_doc(alice)
    assert store.put(obj, now=NOW) is PutResult.ADDED
    assert store.put(obj, now=NOW) is PutResult.DUPLICATE
    assert store.count() == 1
    got = store.get(obj.id)
    assert got == obj and got.to_bytes() == obj.to_bytes()
    assert store.get_stored(obj.id).origin == "local"


def test_bad_objects_leave_the_store_byte_for_byte_unchanged(
    store: ObjectStore, alice: Identity, bob: Identity
) -> None:
    store.put(make_doc(alice, "kept"), now=NOW)
    before = fingerprint(store.path)
    good = make_doc(alice, "new")
    forged = SignedObject(content=good.content, id=good.id, sig=bytes(bob.sign(good.id).signature))
    wrong_id = SignedObject(content=good.content, id=bytes(32), sig=good.sig)
    future = make_doc(alice, "later", at=NOW + 3600)
    for bad in (forged, wrong_id, future):
        with pytest.raises(InvalidObject):
            store.put(bad, now=NOW)
    target = make_doc(alice, "alice's")
    store.put(target, now=NOW)
    before = fingerprint(store.path)
    foreign = sign(Retraction(author=bob.public_key, created_at=NOW, target=target.id), bob)
    with pytest.raises(InvalidObject, match="another author"):
        store.put(foreign, now=NOW)
    assert fingerprint(store.path) == before
    assert store.has(target.id)


def test_items_are_ordered_by_time_then_id_and_ranges_are_half_open(
    store: ObjectStore, alice: Identity
) -> None:
    objs = [make_doc(alice, f"d{i}", at=NOW - (i % 3)) for i in range(9)]
    for obj in objs:
        store.put(obj, now=NOW)
    expected = sorted((o.created_at, o.id) for o in objs)
    assert store.items() == expected
    lower, upper = expected[2], expected[6]
    assert store.items(lower, upper) == expected[2:6]
    assert store.items(upper) == expected[6:]


def test_resolve_by_prefix(store: ObjectStore, alice: Identity) -> None:
    obj = make_doc(alice)
    store.put(obj, now=NOW)
    assert store.resolve(obj.id.hex()[:8]) == obj.id
    assert store.resolve(obj.id.hex().upper()[:10]) == obj.id
    with pytest.raises(NotFound, match="at least 8"):
        store.resolve(obj.id.hex()[:7])
    with pytest.raises(NotFound, match="no object"):
        store.resolve("00000000")


def test_ambiguous_prefix(store: ObjectStore, alice: Identity) -> None:
    # Two ids sharing 8 hex characters would take billions of tries to make,
    # so two rows are written directly: this checks the lookup, not verification.
    raw = make_doc(alice).to_bytes()
    with store.transaction() as db:
        for n, oid in enumerate(
            (bytes.fromhex("aaaaaaaa" + "00" * 28), bytes.fromhex("aaaaaaaa" + "11" * 28))
        ):
            db.execute(
                "INSERT INTO objects VALUES (?, 'document', ?, ?, ?, 'test', 0, 0)",
                (oid, alice.public_key, n, raw),
            )
    with pytest.raises(AmbiguousId, match="several"):
        store.resolve("aaaaaaaa")
    assert store.resolve("aaaaaaaa11") == bytes.fromhex("aaaaaaaa" + "11" * 28)


def test_retraction_removes_content_for_good(store: ObjectStore, alice: Identity) -> None:
    events: list[object] = []
    store.subscribe(events.append)
    obj = make_doc(alice)
    store.put(obj, now=NOW)
    retraction = sign(Retraction(author=alice.public_key, created_at=NOW, target=obj.id), alice)
    store.put(retraction, now=NOW)
    assert not store.has(obj.id)
    assert store.is_withdrawn(obj.id)
    wal = Path(str(store.path) + "-wal")
    on_disk = store.path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    assert b"Body of A." not in on_disk
    with pytest.raises(Withdrawn):
        store.put(obj, now=NOW)
    assert [type(e) for e in events] == [Added, Added, Removed]
    assert isinstance(events[2], Removed) and events[2].id == obj.id


def test_retraction_arriving_first_stops_the_object(
    store: ObjectStore, alice: Identity, bob: Identity
) -> None:
    obj = make_doc(alice)
    store.put(
        sign(Retraction(author=alice.public_key, created_at=NOW, target=obj.id), alice), now=NOW
    )
    with pytest.raises(Withdrawn):
        store.put(obj, now=NOW)
    # A retraction by someone else for an object we do not have yet does not suppress it.
    other = make_doc(alice, "B")
    store.put(
        sign(Retraction(author=bob.public_key, created_at=NOW, target=other.id), bob), now=NOW
    )
    assert store.put(other, now=NOW) is PutResult.ADDED


def test_a_retraction_cannot_be_retracted(store: ObjectStore, alice: Identity) -> None:
    obj = make_doc(alice)
    r1 = sign(Retraction(author=alice.public_key, created_at=NOW, target=obj.id), alice)
    store.put(r1, now=NOW)
    r2 = sign(Retraction(author=alice.public_key, created_at=NOW, target=r1.id), alice)
    with pytest.raises(InvalidObject, match="cannot itself"):
        store.put(r2, now=NOW)


def test_replaces_gives_the_newest_version_by_the_same_author(
    store: ObjectStore, alice: Identity, bob: Identity
) -> None:
    v1 = make_doc(alice, "v1", at=NOW - 10)
    v2 = make_doc(alice, "v2", at=NOW - 5, replaces=v1.id)
    v3 = make_doc(alice, "v3", at=NOW, replaces=v2.id)
    for obj in (v1, v2, v3):
        store.put(obj, now=NOW)
    assert [s.obj.id for s in store.objects(kind="document")] == [v3.id]
    assert len(store.objects(kind="document", heads_only=False)) == 3
    hijack = make_doc(bob, "bob's", replaces=v3.id)
    with pytest.raises(InvalidObject, match="same author"):
        store.put(hijack, now=NOW)
    assert [s.obj.id for s in store.objects(kind="document")] == [v3.id]


def heads(store: ObjectStore) -> list[bytes]:
    """The newest-version rule as both of its readers see it; they must agree."""
    listed = [s.obj.id for s in store.objects(kind="document")]
    viewed = [bytes(r[0]) for r in store.query(
        "SELECT id FROM heads WHERE kind = 'document' ORDER BY created_at, id"
    )]
    assert listed == viewed
    return listed


def test_the_newest_version_rule(store: ObjectStore, alice: Identity, bob: Identity) -> None:
    v1 = make_doc(alice, "v1", at=NOW - 10)
    v2 = make_doc(alice, "v2", at=NOW - 5, replaces=v1.id)
    # The newer version may arrive first: the older one is hidden when it comes.
    store.put(v2, now=NOW)
    assert heads(store) == [v2.id]
    store.put(v1, now=NOW)
    assert heads(store) == [v2.id]
    # Retracting the newer version brings the older one back.
    store.put(sign(Retraction(author=alice.public_key, created_at=NOW, target=v2.id), alice),
              now=NOW)
    assert heads(store) == [v1.id]
    # Another author cannot hide a document by claiming to replace it before it arrives.
    original = make_doc(alice, "original", at=NOW - 20)
    claim = make_doc(bob, "claim", at=NOW - 1, replaces=original.id)
    store.put(claim, now=NOW)
    store.put(original, now=NOW)
    assert heads(store) == [original.id, v1.id, claim.id]


def test_raw_objects_and_sizes_are_oldest_first_and_skip_unknown_ids(
    store: ObjectStore, alice: Identity
) -> None:
    objs = [make_doc(alice, f"d{i}", at=NOW - i) for i in range(600)]  # over one SQL batch
    for obj in objs:
        store.put(obj, now=NOW)
    asked = [o.id for o in objs] + [bytes(32)]
    expected = [o.id for o in sorted(objs, key=lambda o: (o.created_at, o.id))]
    raw = store.raw_objects(asked)
    assert [oid for oid, _ in raw] == expected
    assert all(store.get(oid).to_bytes() == data for oid, data in raw)
    assert store.sizes(asked) == [(oid, len(data)) for oid, data in raw]
    assert store.raw_objects([bytes(32)]) == [] and store.sizes([]) == []


def test_authors_counts_and_kind_filters(
    store: ObjectStore, alice: Identity, bob: Identity
) -> None:
    a = make_doc(alice, "same", at=NOW - 1)
    b = make_doc(bob, "same")
    store.put(a, now=NOW)
    store.put(b, now=NOW)
    store.put(make_doc(alice, "other"), now=NOW)
    store.put(sign(Profile(author=bob.public_key, created_at=NOW, name="bob"), bob), now=NOW)
    assert store.authors() == {alice.public_key, bob.public_key}
    assert store.count_by_kind() == {"document": 3, "profile": 1}
    assert [oid for _, oid in store.items(kind="profile")] == [
        s.obj.id for s in store.objects(kind="profile")
    ]
    assert len(store.items(kind="document")) == 3
    assert [s.obj.id for s in store.objects(title="same")] == [a.id, b.id]
    assert [s.obj.id for s in store.objects(title="same", author=bob.public_key)] == [b.id]
    assert store.objects(title="Same") == []


def test_filters_by_author_and_tag(store: ObjectStore, alice: Identity, bob: Identity) -> None:
    store.put(make_doc(alice, "a", tags=("soil",)), now=NOW)
    store.put(make_doc(bob, "b", tags=("soil", "water")), now=NOW)
    store.put(make_doc(bob, "c"), now=NOW)
    assert {s.obj.content.title for s in store.objects(tag="soil")} == {"a", "b"}  # type: ignore[union-attr]
    assert {s.obj.content.title for s in store.objects(author=bob.public_key)} == {"b", "c"}  # type: ignore[union-attr]


def test_display_names_take_the_newest_profile(store: ObjectStore, alice: Identity) -> None:
    store.put(
        sign(Profile(author=alice.public_key, created_at=NOW - 1, name="old"), alice), now=NOW
    )
    store.put(sign(Profile(author=alice.public_key, created_at=NOW, name="new"), alice), now=NOW)
    assert store.display_names() == {alice.public_key: "new"}


def test_migrations_are_numbered_per_component_and_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    s = ObjectStore(path)
    steps = [
        lambda db: db.execute("CREATE TABLE extra (x)"),
        lambda db: db.execute("ALTER TABLE extra ADD COLUMN y"),
    ]
    s.migrate("extra", steps[:1])
    assert s.schema_version("extra") == 1
    s.migrate("extra", steps)
    assert s.schema_version("extra") == 2
    assert s.schema_version("objects") == len(MIGRATIONS)
    s.close()
    s = ObjectStore(path)
    s.migrate("extra", steps)  # nothing to do: already at 2
    assert s.schema_version("extra") == 2
    with pytest.raises(StoreError, match="newer than this program"):
        s.migrate("extra", steps[:1])
    s.close()


def test_a_failing_migration_changes_nothing(tmp_path: Path) -> None:
    s = ObjectStore(tmp_path / "c.db")

    def broken(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half (x)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        s.migrate("broken", [broken])
    assert s.schema_version("broken") == 0
    assert not s.query("SELECT name FROM sqlite_master WHERE name = 'half'")
    s.close()


def test_store_is_in_wal_mode(store: ObjectStore) -> None:
    assert store.query("PRAGMA journal_mode")[0][0] == "wal"
