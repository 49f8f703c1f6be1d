"""The object store: SQLite in WAL mode, the source of truth of a peer.

Every object is verified before it is written, and a write either happens
whole or not at all. Retractions delete the retracted object's row and leave
a tombstone, so the object cannot come back from a peer that still has it.

Other modules read and write objects through the methods of `ObjectStore`,
never through SQL on its tables. Components with tables of their own in the
same file use the narrow component API: `migrate`, `transaction`, `query`, and
the read-only views `heads` and `object_tags` (see `commons.storage.schema`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from commons.model.canonical import decode_json
from commons.model.errors import AmbiguousId, InvalidObject, NotFound, StoreError, Withdrawn
from commons.model.objects import (
    Document,
    Profile,
    Retraction,
    SignedObject,
    content_from_fields,
    parse,
    verify,
)
from commons.storage.schema import IS_HEAD, MIGRATIONS, VIEWS, Migration, execute_script

# `execute_script` is re-exported for components' migrations.
__all__ = [
    "Added", "BlockChanged", "BlockedAuthor", "Event", "Item", "Migration", "ObjectStore",
    "PutResult", "Removed", "Stored",
    "execute_script", "load_trusted", "prefix_range",
]

log = logging.getLogger(__name__)

Item = tuple[int, bytes]  # (created_at, id): the reconciliation order


class PutResult(Enum):
    ADDED = "added"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Added:
    obj: SignedObject
    origin: str


@dataclass(frozen=True)
class Removed:
    id: bytes
    by: bytes  # the retraction that removed it (empty: quarantined as corrupt)


@dataclass(frozen=True)
class BlockChanged:
    """The local block list gained or lost an author."""

    author: bytes
    blocked: bool


Event = Added | Removed | BlockChanged


@dataclass(frozen=True)
class Stored:
    """An object as the store keeps it, with where and when it arrived."""

    obj: SignedObject
    origin: str
    received_at: int


@dataclass(frozen=True)
class BlockedAuthor:
    author: bytes
    reason: str | None
    at: int


def load_trusted(raw: bytes) -> SignedObject:
    """Rebuild an object the store verified when it was written."""
    fields = decode_json(raw)
    oid = bytes.fromhex(fields.pop("id"))
    sig = bytes.fromhex(fields.pop("sig"))
    return SignedObject(content=content_from_fields(fields), id=oid, sig=sig)


# Stored objects passed the clock check when they arrived; checking them again
# must not fail merely because this machine's clock went back.
_ANY_TIME = 2**40


def unusable(path: Path, exc: sqlite3.Error) -> str:
    """One line on why a store cannot be used, and the way out."""
    text = str(exc)
    if "readonly" in text or "read-only" in text:
        return (f"{path} cannot be written ({text}): the file or its directory is read-only,"
                " or the home belongs to another user; run as its owner or choose another"
                " --home")
    if "unable to open" in text:
        return (f"{path} cannot be opened ({text}): check that its directory exists and is"
                " yours, or choose another --home")
    if "locked" in text or "busy" in text:
        return f"{path} is busy ({text}); another program holds it, try again in a moment"
    return (f"{path} is damaged ({text}); `commons check --salvage FILE` saves every object"
            " that still verifies, for `commons import` into a fresh --home")


def prefix_range(prefix: str) -> tuple[bytes, bytes]:
    """The id range [low, high] that a hex prefix of 8 or more characters covers."""
    text = prefix.strip().lower()
    if len(text) < 8 or len(text) > 64 or any(c not in "0123456789abcdef" for c in text):
        raise NotFound(f"{prefix!r} is not an object id; give at least 8 hex characters of one")
    return bytes.fromhex(text.ljust(64, "0")), bytes.fromhex(text.ljust(64, "f"))


class ObjectStore:
    """Signed objects in one SQLite file. Safe to share between threads."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._listeners: list[Callable[[Event], None]] = []
        try:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
        except sqlite3.Error as exc:
            raise StoreError(unusable(self.path, exc)) from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            # Retracted content must not linger in free pages of the file.
            self._db.execute("PRAGMA secure_delete=ON")
            self._migrate()
            with self._lock:
                execute_script(self._db, VIEWS)
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(unusable(self.path, exc)) from None

    # -- plumbing -------------------------------------------------------------

    def _migrate(self) -> None:
        self.migrate("objects", MIGRATIONS)

    def migrate(self, component: str, migrations: Sequence[Migration]) -> None:
        """Bring one component's tables up to date, each step all or nothing.

        Components (the object store, the lexical index, the peer table) keep
        their own version numbers, so each can add tables without the others.
        """
        with self.transaction() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions"
                " (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
            row = db.execute(
                "SELECT version FROM schema_versions WHERE component = ?", (component,)
            ).fetchone()
        version = row[0] if row else 0
        if version > len(migrations):
            raise StoreError(
                f"{self.path} has {component} schema version {version}, newer than this"
                f" program knows ({len(migrations)}); upgrade commons"
            )
        for number in range(version, len(migrations)):
            with self.transaction() as db:
                migrations[number](db)
                db.execute(
                    "INSERT OR REPLACE INTO schema_versions (component, version) VALUES (?, ?)",
                    (component, number + 1),
                )
            log.info("migrated %s %s to version %d", self.path, component, number + 1)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate write transaction, for a component's own tables."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one statement, for a component's own tables and the published views."""
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def schema_version(self, component: str = "objects") -> int:
        rows = self.query("SELECT version FROM schema_versions WHERE component = ?", (component,))
        return int(rows[0][0]) if rows else 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        """Call `listener` after each committed change (in the writer's thread)."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[Event], None]) -> None:
        self._listeners.remove(listener)

    def _emit(self, events: list[Event]) -> None:
        for event in events:
            for listener in list(self._listeners):
                try:
                    listener(event)
                except Exception:  # a listener's bug must not undo a stored write
                    log.exception("store listener failed on %s", event)

    # -- writing --------------------------------------------------------------

    def put(self, obj: SignedObject, *, now: int, origin: str = "local") -> PutResult:
        """Verify and store one object. Idempotent. Raises Refused subclasses."""
        verify(obj, now=now)
        events: list[Event] = []
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM objects WHERE id = ?", (obj.id,)).fetchone():
                return PutResult.DUPLICATE
            # Only a retraction by this object's own author withdraws it; one
            # signed by anybody else names an object that is not theirs.
            tomb = db.execute(
                "SELECT retraction FROM tombstones WHERE target = ? AND author = ?",
                (obj.id, obj.author),
            ).fetchone()
            if tomb:
                db.execute(
                    "UPDATE tombstones SET confirmed = 1 WHERE target = ? AND author = ?",
                    (obj.id, obj.author),
                )
            else:
                events.extend(self._insert(db, obj, origin, now))
        if tomb:  # raised after the commit, which keeps the tombstone confirmed
            raise Withdrawn(
                f"{obj.id.hex()[:16]}… was retracted by its author"
                f" (retraction {bytes(tomb[0]).hex()[:16]}…)"
            )
        if events:
            self._forget_removed_pages()
        self._emit([Added(obj, origin), *events])
        return PutResult.ADDED

    def _insert(
        self, db: sqlite3.Connection, obj: SignedObject, origin: str, now: int
    ) -> list[Event]:
        events: list[Event] = []
        content = obj.content
        if isinstance(content, Retraction):
            events.extend(self._apply_retraction(db, obj, content))
        elif isinstance(content, Document) and content.replaces is not None:
            self._check_replaces(db, obj, content.replaces)
        db.execute("DELETE FROM quarantine WHERE id = ?", (obj.id,))  # a good copy came back
        db.execute(
            "INSERT INTO objects (id, kind, author, created_at, raw, origin, received_at,"
            " verified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (obj.id, obj.kind, obj.author, obj.created_at, obj.to_bytes(), origin, now, now),
        )
        if isinstance(content, Document):
            db.executemany(
                "INSERT INTO tags (id, tag) VALUES (?, ?)",
                [(obj.id, tag) for tag in content.tags],
            )
            if content.replaces is not None:
                db.execute(
                    "INSERT INTO versions (old, new, author) VALUES (?, ?, ?)",
                    (content.replaces, obj.id, obj.author),
                )
        return events

    def _forget_removed_pages(self) -> None:
        """Move the log into the main file and truncate it, so the retracted
        object's bytes are left neither in the log nor in free pages."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _apply_retraction(
        self, db: sqlite3.Connection, obj: SignedObject, retraction: Retraction
    ) -> list[Event]:
        row = db.execute(
            "SELECT author, kind FROM objects WHERE id = ?", (retraction.target,)
        ).fetchone()
        if row is not None:
            author, kind = bytes(row[0]), row[1]
            if author != obj.author:
                raise InvalidObject(
                    f"retraction {obj.id.hex()[:16]}… targets an object by another author;"
                    " only its author can retract an object"
                )
            if kind == "retraction":
                raise InvalidObject("a retraction cannot itself be retracted")
            db.execute("DELETE FROM objects WHERE id = ?", (retraction.target,))
        db.execute(
            "INSERT OR IGNORE INTO tombstones (target, author, retraction, confirmed)"
            " VALUES (?, ?, ?, ?)",
            (retraction.target, obj.author, obj.id, int(row is not None)),
        )
        return [Removed(retraction.target, obj.id)] if row is not None else []

    def _check_replaces(self, db: sqlite3.Connection, obj: SignedObject, old: bytes) -> None:
        row = db.execute("SELECT author, kind FROM objects WHERE id = ?", (old,)).fetchone()
        if row is not None and (bytes(row[0]) != obj.author or row[1] != "document"):
            raise InvalidObject(
                f"document {obj.id.hex()[:16]}… claims to replace an object that is not a"
                " document by the same author; publish it without `replaces`"
            )

    def newest_of(self, author: bytes, kind: str) -> Item | None:
        """(created_at, id) of `author`'s newest object of `kind`, if any."""
        rows = self.query(
            "SELECT created_at, id FROM objects WHERE author = ? AND kind = ?"
            " ORDER BY created_at DESC, id DESC LIMIT 1",
            (author, kind),
        )
        return (int(rows[0][0]), bytes(rows[0][1])) if rows else None

    def drop_older(self, author: bytes, kind: str, newest: Item) -> int:
        """Delete `author`'s profiles or peer records older than `newest`.

        Only the newest of these kinds means anything, and without this one
        author could fill the store with thousands of them.
        """
        if kind not in ("profile", "peer"):
            raise ValueError(f"only profiles and peer records are superseded, not {kind}")
        with self.transaction() as db:
            return db.execute(
                "DELETE FROM objects WHERE author = ? AND kind = ? AND (created_at, id) < (?, ?)",
                (author, kind, newest[0], newest[1]),
            ).rowcount

    def peer_records(self) -> list[tuple[bytes, bytes, int]]:
        """(id, author, created_at) of every stored peer record."""
        rows = self.query("SELECT id, author, created_at FROM objects WHERE kind = 'peer'")
        return [(bytes(r[0]), bytes(r[1]), int(r[2])) for r in rows]

    def drop_peer_records(self, ids: Sequence[bytes]) -> int:
        """Delete these peer records (expired); any other kind among `ids` stays."""
        with self.transaction() as db:
            return sum(db.execute("DELETE FROM objects WHERE id = ? AND kind = 'peer'",
                                  (oid,)).rowcount for oid in ids)

    # -- bit rot ---------------------------------------------------------------

    @staticmethod
    def verified_raw(
        rows: Sequence[tuple[bytes, bytes]],
    ) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, str]]]:
        """Split (id, bytes) rows into those that still verify and (id, reason) of those
        that do not (a flipped bit on disk). Cheap: thousands per second."""
        good: list[tuple[bytes, bytes]] = []
        bad: list[tuple[bytes, str]] = []
        for oid, raw in rows:
            try:
                obj = parse(raw, now=_ANY_TIME)
                if obj.id != oid:
                    raise InvalidObject("its bytes hold another object's id")
            except InvalidObject as exc:
                bad.append((oid, str(exc)))
                continue
            good.append((oid, raw))
        return good, bad

    def quarantine(self, oid: bytes, reason: str, *, now: int) -> bool:
        """Move a stored object that no longer verifies aside: not served, not held,
        so reconciliation fetches a good copy from a peer."""
        with self.transaction() as db:
            row = db.execute("SELECT raw FROM objects WHERE id = ?", (oid,)).fetchone()
            if row is None:
                return False
            db.execute(
                "INSERT OR REPLACE INTO quarantine (id, raw, reason, at) VALUES (?, ?, ?, ?)",
                (oid, row[0], reason, now),
            )
            db.execute("DELETE FROM objects WHERE id = ?", (oid,))
        log.warning("quarantined %s: %s", oid.hex()[:16], reason)
        self._emit([Removed(oid, b"")])
        return True

    def quarantined(self) -> list[tuple[bytes, str, int]]:
        rows = self.query("SELECT id, reason, at FROM quarantine ORDER BY at, id")
        return [(bytes(oid), str(reason), int(at)) for oid, reason, at in rows]

    # -- the local block list ------------------------------------------------

    def block(self, author: bytes, *, reason: str | None, now: int) -> bool:
        """Hide an author's objects here and refuse new ones. False if already blocked."""
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM blocked_authors WHERE author = ?", (author,)).fetchone():
                return False
            db.execute("INSERT INTO blocked_authors (author, reason, at) VALUES (?, ?, ?)",
                       (author, reason, now))
        self._emit([BlockChanged(author, True)])
        return True

    def unblock(self, author: bytes) -> bool:
        """Show an author's objects again. False if they were not blocked."""
        with self.transaction() as db:
            gone = db.execute("DELETE FROM blocked_authors WHERE author = ?", (author,)).rowcount
        if gone:
            self._emit([BlockChanged(author, False)])
        return bool(gone)

    def blocked(self) -> list[BlockedAuthor]:
        rows = self.query("SELECT author, reason, at FROM blocked_authors ORDER BY at, author")
        return [BlockedAuthor(bytes(a), r, int(t)) for a, r, t in rows]

    def blocked_keys(self) -> frozenset[bytes]:
        return frozenset(bytes(r[0]) for r in self.query("SELECT author FROM blocked_authors"))

    # -- reading --------------------------------------------------------------

    def has(self, oid: bytes) -> bool:
        return bool(self.query("SELECT 1 FROM objects WHERE id = ?", (oid,)))

    def is_withdrawn(self, oid: bytes) -> bool:
        """True if the author of `oid` retracted it (we held it, or were offered it since).

        A retraction of an object we never saw proves nothing about whose the
        object is, so it does not count here: anyone may sign one.
        """
        return bool(
            self.query("SELECT 1 FROM tombstones WHERE target = ? AND confirmed = 1", (oid,))
        )

    def get(self, oid: bytes) -> SignedObject:
        return self.get_stored(oid).obj

    def get_stored(self, oid: bytes) -> Stored:
        rows = self.query("SELECT raw, origin, received_at FROM objects WHERE id = ?", (oid,))
        if not rows:
            raise NotFound(f"no object {oid.hex()[:16]}… in this commons")
        raw, origin, received_at = rows[0]
        return Stored(load_trusted(raw), origin, received_at)

    def resolve(self, prefix: str) -> bytes:
        """The full id for a hex prefix of 8+ characters. Raises if none or several."""
        low, high = prefix_range(prefix)
        rows = self.query("SELECT id FROM objects WHERE id BETWEEN ? AND ? LIMIT 2", (low, high))
        if not rows:
            raise NotFound(f"no object with an id starting {prefix.strip().lower()}")
        if len(rows) > 1:
            raise AmbiguousId(f"{prefix.strip()} matches several objects; give more characters")
        return bytes(rows[0][0])

    def count(self, kind: str | None = None) -> int:
        if kind is None:
            return int(self.query("SELECT count(*) FROM objects")[0][0])
        return int(self.query("SELECT count(*) FROM objects WHERE kind = ?", (kind,))[0][0])

    def count_by_kind(self) -> dict[str, int]:
        """How many objects of each kind are stored (kinds with none are left out)."""
        rows = self.query("SELECT kind, count(*) FROM objects GROUP BY kind")
        return {str(kind): int(n) for kind, n in rows}

    def authors(self) -> set[bytes]:
        """The keys of everyone with at least one stored object."""
        return {bytes(r[0]) for r in self.query("SELECT DISTINCT author FROM objects")}

    def items(
        self, lower: Item = (0, b""), upper: Item | None = None, *, kind: str | None = None
    ) -> list[Item]:
        """(created_at, id) pairs with lower <= item < upper, in that order."""
        sql = "SELECT created_at, id FROM objects WHERE (created_at, id) >= (?, ?)"
        params: list[Any] = [lower[0], lower[1]]
        if upper is not None:
            sql += " AND (created_at, id) < (?, ?)"
            params += [upper[0], upper[1]]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        return [
            (ts, bytes(oid)) for ts, oid in self.query(sql + " ORDER BY created_at, id", params)
        ]

    def raw_objects(
        self, ids: Sequence[bytes], *, skip_authors: frozenset[bytes] = frozenset()
    ) -> list[tuple[bytes, bytes]]:
        """(id, canonical bytes) of the stored objects among `ids`, oldest first,
        leaving out those by `skip_authors`."""
        if skip_authors:
            ids = [oid for oid, author in self._among(ids, "author")
                   if bytes(author) not in skip_authors]
        return [(oid, bytes(raw)) for oid, raw in self._among(ids, "raw")]

    def sizes(self, ids: Sequence[bytes]) -> list[tuple[bytes, int]]:
        """(id, size in bytes) of the stored objects among `ids`, oldest first."""
        return [(oid, int(n)) for oid, n in self._among(ids, "length(raw)")]

    def _among(self, ids: Sequence[bytes], column: str) -> list[tuple[bytes, Any]]:
        out: list[tuple[int, bytes, Any]] = []
        for start in range(0, len(ids), 500):  # SQLite caps the number of parameters
            chunk = ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = self.query(
                f"SELECT created_at, id, {column} FROM objects WHERE id IN ({marks})", list(chunk)
            )
            out.extend((ts, bytes(oid), value) for ts, oid, value in rows)
        out.sort(key=lambda row: (row[0], row[1]))
        return [(oid, value) for _, oid, value in out]

    def objects(
        self,
        *,
        kind: str | None = None,
        author: bytes | None = None,
        tag: str | None = None,
        title: str | None = None,
        heads_only: bool = True,
        since: Item | None = None,
        limit: int | None = None,
    ) -> list[Stored]:
        """Stored objects, oldest first; `heads_only` hides replaced documents.

        `title` keeps documents with exactly that title (matched in SQL, so that
        looking for one document among many decodes only the candidates).
        """
        sql = "SELECT o.raw, o.origin, o.received_at FROM objects o"
        where: list[str] = []
        params: list[Any] = []
        if tag is not None:
            sql += " JOIN tags t ON t.id = o.id AND t.tag = ?"
            params.append(tag)
        if kind is not None:
            where.append("o.kind = ?")
            params.append(kind)
        if author is not None:
            where.append("o.author = ?")
            params.append(author)
        if title is not None:
            where.append("json_extract(CAST(o.raw AS TEXT), '$.title') = ?")
            params.append(title)
        if since is not None:
            where.append("(o.created_at, o.id) > (?, ?)")
            params += [since[0], since[1]]
        if heads_only:
            where.append(IS_HEAD)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY o.created_at, o.id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [
            Stored(load_trusted(raw), origin, at) for raw, origin, at in self.query(sql, params)
        ]

    def display_name(self, author: bytes) -> str | None:
        """One author's newest profile name (reads only that author's profiles)."""
        rows = self.query(
            "SELECT raw FROM objects WHERE author = ? AND kind = 'profile'"
            " ORDER BY created_at DESC, id DESC LIMIT 1",
            (author,),
        )
        if not rows:
            return None
        content = load_trusted(rows[0][0]).content
        return content.name if isinstance(content, Profile) else None

    def display_names(self) -> dict[bytes, str]:
        """Each author's newest profile name."""
        names: dict[bytes, tuple[int, str]] = {}
        for stored in self.objects(kind="profile", heads_only=False):
            content = stored.obj.content
            assert isinstance(content, Profile)
            known = names.get(stored.obj.author)
            if known is None or known[0] <= stored.obj.created_at:
                names[stored.obj.author] = (stored.obj.created_at, content.name)
        return {author: name for author, (_, name) in names.items()}
