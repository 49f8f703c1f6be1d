"""The object store's tables, its migrations, and the views it publishes.

The tables (objects, tags, versions, tombstones, blocked_authors,
quarantine) are private to
`commons.storage.store`. Components that keep tables of their own in the same
file (the word index, the peer table, declined ids) bring their own
migrations through `ObjectStore.migrate` and may join with the read-only views
below, never with the tables:

- `heads (id, kind, author, created_at)`: stored objects that no newer stored
  version by the same author replaces (the newest-version rule, `IS_HEAD`).
- `object_tags (id, tag)`: the tags of stored documents.

The views are TEMP views, created on each connection: they are not part of the
file's schema, so changing them needs no migration.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

Migration = Callable[[sqlite3.Connection], None]


def execute_script(db: sqlite3.Connection, script: str) -> None:
    """Run statements one by one inside the caller's transaction.

    `executescript` would commit first, and a migration must be all or nothing.
    """
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement in migration: {statement.strip()[:60]}")


def _m1_objects(db: sqlite3.Connection) -> None:
    execute_script(
        db,
        """
        CREATE TABLE objects (
            id BLOB PRIMARY KEY,
            kind TEXT NOT NULL,
            author BLOB NOT NULL,
            created_at INTEGER NOT NULL,
            raw BLOB NOT NULL,
            origin TEXT NOT NULL,
            received_at INTEGER NOT NULL,
            verified_at INTEGER NOT NULL
        );
        CREATE UNIQUE INDEX objects_by_time ON objects (created_at, id);
        CREATE INDEX objects_by_author ON objects (author, kind);
        CREATE TABLE tags (
            id BLOB NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
            tag TEXT NOT NULL,
            PRIMARY KEY (tag, id)
        );
        CREATE INDEX tags_by_id ON tags (id);
        CREATE TABLE versions (
            old BLOB NOT NULL,
            new BLOB NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
            author BLOB NOT NULL,
            PRIMARY KEY (old, new)
        );
        CREATE TABLE tombstones (
            target BLOB NOT NULL,
            author BLOB NOT NULL,
            retraction BLOB NOT NULL,
            PRIMARY KEY (target, author)
        );
        """,
    )


def _m2_confirmed_tombstones(db: sqlite3.Connection) -> None:
    # A local block list; stored objects that stopped verifying (bit rot),
    # moved aside so they are neither served nor counted as held.
    # A tombstone is "confirmed" once we saw the withdrawn object by the same
    # author as the retraction. Only a confirmed one may stop us asking peers
    # for an id: a stranger can sign a retraction naming anyone's object.
    execute_script(
        db,
        """
        CREATE TABLE blocked_authors (
            author BLOB PRIMARY KEY,
            reason TEXT,
            at INTEGER NOT NULL
        );
        ALTER TABLE tombstones ADD COLUMN confirmed INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE quarantine (
            id BLOB PRIMARY KEY,
            raw BLOB NOT NULL,
            reason TEXT NOT NULL,
            at INTEGER NOT NULL
        );
        """,
    )


# Numbered migrations: MIGRATIONS[n] takes the schema from version n to n+1.
# Append only; never edit one that has shipped.
MIGRATIONS: list[Migration] = [_m1_objects, _m2_confirmed_tombstones]

# The newest-version rule, the only place it is written: the row `o` of
# objects is a head unless a stored document by the same author replaces it.
# (A replacement that is not stored yet, or was retracted, hides nothing.)
IS_HEAD = (
    "NOT EXISTS (SELECT 1 FROM versions v JOIN objects n ON n.id = v.new"
    " WHERE v.old = o.id AND v.author = o.author)"
)

VIEWS = f"""
CREATE TEMP VIEW IF NOT EXISTS heads AS
    SELECT o.id, o.kind, o.author, o.created_at FROM objects o WHERE {IS_HEAD};
CREATE TEMP VIEW IF NOT EXISTS object_tags AS SELECT id, tag FROM tags;
"""
