"""The index's own tables in the store's database: passages and their FTS5 word index.

`index_docs` says which documents are indexed, `index_chunks` holds their
passages (the authority on which passages exist: a vector without a row here
is ignored), and `index_fts` their words, porter-stemmed, ranked by BM25. They
join the store's read-only views (`heads`, `object_tags`), never its tables, so
the newest-version rule is the store's alone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from commons.model.text import content_words, one_line
from commons.search.chunking import Chunk
from commons.storage.store import ObjectStore, execute_script

COMPONENT = "index"  # its schema version in the store's schema_versions table
MAX_QUERY_TERMS = 32
LEXICAL_MARGIN = 20  # extra ranked passages fetched in case some are no longer current
# bm25() column weights (title, text): a word in the title says more about a
# passage than the same word in its text. Tuned on SciFact dev (docs/benchmarks.md).
TITLE_WEIGHT = 2.0
TEXT_WEIGHT = 1.0


def _m1_index(db: sqlite3.Connection) -> None:
    execute_script(
        db,
        """
        CREATE TABLE index_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE index_docs (
            doc BLOB PRIMARY KEY,
            author BLOB NOT NULL,
            chunks INTEGER NOT NULL
        );
        CREATE TABLE index_chunks (
            id INTEGER PRIMARY KEY,
            doc BLOB NOT NULL,
            author BLOB NOT NULL,
            position INTEGER NOT NULL,
            page INTEGER,
            start_char INTEGER NOT NULL,
            end_char INTEGER NOT NULL,
            text TEXT NOT NULL,
            UNIQUE (doc, position)
        );
        CREATE VIRTUAL TABLE index_fts USING fts5(
            title, text, tokenize = 'porter unicode61 remove_diacritics 2'
        );
        """,
    )


def _m2_embedded(db: sqlite3.Connection) -> None:
    # Words are written the moment a document is stored; its vectors follow.
    execute_script(
        db,
        """
        ALTER TABLE index_docs ADD COLUMN embedded INTEGER NOT NULL DEFAULT 1;
        CREATE INDEX index_docs_unembedded ON index_docs (embedded) WHERE embedded = 0;
        """,
    )


MIGRATIONS = [_m1_index, _m2_embedded]


@dataclass(frozen=True)
class Filters:
    """Whose documents may be used: only `authors` and `tags` (if given), never `blocked`."""

    authors: frozenset[bytes] = frozenset()
    tags: frozenset[str] = frozenset()
    blocked: frozenset[bytes] = frozenset()


NO_FILTERS = Filters()


@dataclass(frozen=True)
class ChunkRow:
    id: int
    doc: bytes
    author: bytes
    position: int
    page: int | None
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Scored:
    chunk: int  # index_chunks.id
    score: float  # higher is better: cosine similarity, or -bm25


@dataclass(frozen=True)
class Snippet:
    """A passage found by words, with a marked-up snippet of its text."""

    doc: bytes
    position: int
    start: int
    end: int
    snippet: str


@dataclass(frozen=True)
class DenseCounts:
    documents: int  # indexed by words
    embedded: int  # of those, with vectors too
    embedded_chunks: int


@dataclass(frozen=True)
class Passages:
    """A document's passages, as they are to be written."""

    doc: bytes
    author: bytes
    title: str
    chunks: Sequence[Chunk]


def match_query(text: str) -> str | None:
    """An FTS5 MATCH expression: the question's content words, quoted, OR-ed.

    Every term is a double-quoted string of word characters, so nothing a
    user types can be read as FTS5 syntax (AND, NEAR, *, column filters).
    """
    terms = [t for t in content_words(text) if t.strip("_")][:MAX_QUERY_TERMS]
    if not terms:
        return None
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


def _marks(n: int) -> str:
    return ",".join("?" * n)


@dataclass(frozen=True)
class DocumentHit:
    """A document whose words match a search, with its best passage's snippet."""

    doc: bytes
    score: float  # -bm25 of its best passage: higher is better
    snippet: str  # the matching words wrapped in SNIPPET_MARK


SNIPPET_MARK = ("[", "]")
SNIPPET_TOKENS = 16


def all_words_query(text: str) -> str | None:
    """Like `match_query`, but every word must be in the passage (AND)."""
    terms = [t for t in content_words(text) if t.strip("_")][:MAX_QUERY_TERMS]
    if not terms:
        return None
    return " ".join('"' + t.replace('"', '""') + '"' for t in terms)


class LexicalIndex:
    """Indexed documents, their passages and the words of those passages."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        store.migrate(COMPONENT, MIGRATIONS)

    # -- state -----------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        rows = self.store.query("SELECT value FROM index_meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO index_meta (key, value) VALUES (?, ?)", (key, value)
            )

    def counts(self) -> tuple[int, int]:
        """(documents, passages) indexed."""
        docs, chunks = self.store.query(
            "SELECT (SELECT count(*) FROM index_docs), (SELECT count(*) FROM index_chunks)"
        )[0]
        return int(docs), int(chunks)

    def dense_counts(self) -> DenseCounts:
        docs, embedded, chunks = self.store.query(
            "SELECT count(*), coalesce(sum(embedded), 0),"
            " coalesce(sum(CASE WHEN embedded THEN chunks ELSE 0 END), 0) FROM index_docs"
        )[0]
        return DenseCounts(int(docs), int(embedded), int(chunks))

    def unembedded(self, limit: int) -> list[bytes]:
        """Documents searchable by words but not yet by meaning, in the order they came."""
        rows = self.store.query(
            "SELECT doc FROM index_docs WHERE embedded = 0 ORDER BY rowid LIMIT ?", (limit,)
        )
        return [bytes(r[0]) for r in rows]

    def to_embed(self, docs: Sequence[bytes]) -> list[tuple[ChunkRow, str]]:
        """The passages of `docs` with their document's title, in document order."""
        if not docs:
            return []
        rows = self.store.query(
            "SELECT c.id, c.doc, c.author, c.position, c.page, c.start_char, c.end_char, c.text,"
            " f.title FROM index_chunks c JOIN index_fts f ON f.rowid = c.id"
            f" WHERE c.doc IN ({_marks(len(docs))}) ORDER BY c.doc, c.position",
            list(docs),
        )
        return [
            (ChunkRow(int(r[0]), bytes(r[1]), bytes(r[2]), r[3], r[4], r[5], r[6], r[7]), r[8])
            for r in rows
        ]

    def mark_embedded(self, docs: Sequence[bytes]) -> list[bytes]:
        """Record that `docs` have vectors; returns those still indexed (others went)."""
        if not docs:
            return []
        with self.store.transaction() as db:
            db.execute(
                f"UPDATE index_docs SET embedded = 1 WHERE doc IN ({_marks(len(docs))})",
                list(docs),
            )
            rows = db.execute(
                f"SELECT doc FROM index_docs WHERE doc IN ({_marks(len(docs))})", list(docs)
            ).fetchall()
        return [bytes(r[0]) for r in rows]

    def pending(self) -> list[bytes]:
        """Head documents in the store that are not indexed, oldest first."""
        rows = self.store.query(
            "SELECT h.id FROM heads h WHERE h.kind = 'document'"
            " AND NOT EXISTS (SELECT 1 FROM index_docs d WHERE d.doc = h.id)"
            " ORDER BY h.created_at, h.id"
        )
        return [bytes(r[0]) for r in rows]

    def stale(self) -> list[bytes]:
        """Indexed documents that were retracted or replaced by a newer version."""
        rows = self.store.query(
            "SELECT d.doc FROM index_docs d"
            " WHERE NOT EXISTS (SELECT 1 FROM heads h WHERE h.id = d.doc)"
        )
        return [bytes(r[0]) for r in rows]

    def indexed(self, docs: Iterable[bytes]) -> list[bytes]:
        """Those of `docs` that are indexed."""
        docs = list(docs)
        if not docs:
            return []
        rows = self.store.query(
            f"SELECT doc FROM index_docs WHERE doc IN ({_marks(len(docs))})", docs
        )
        return [bytes(r[0]) for r in rows]

    # -- writing ---------------------------------------------------------------

    def clear(self) -> None:
        with self.store.transaction() as db:
            db.execute("DELETE FROM index_fts")
            db.execute("DELETE FROM index_chunks")
            db.execute("DELETE FROM index_docs")

    def write(
        self,
        documents: Sequence[Passages],
        *,
        replacing: Sequence[bytes] = (),
        embedded: bool = True,
    ) -> None:
        """In one transaction: drop the passages of `replacing`, then write `documents`
        (`embedded`: whether their vectors are written already)."""
        with self.store.transaction() as db:
            self._delete_rows(db, replacing)
            next_id = int(db.execute("SELECT coalesce(max(id), 0) FROM index_chunks").fetchone()[0])
            chunk_rows = []
            fts_rows = []
            for d in documents:
                for c in d.chunks:
                    next_id += 1
                    chunk_rows.append(
                        (next_id, d.doc, d.author, c.position, c.page, c.start, c.end, c.text)
                    )
                    fts_rows.append((next_id, d.title, c.text))
                db.execute(
                    "INSERT OR REPLACE INTO index_docs (doc, author, chunks, embedded)"
                    " VALUES (?, ?, ?, ?)",
                    (d.doc, d.author, len(d.chunks), int(embedded)),
                )
            db.executemany(
                "INSERT INTO index_chunks (id, doc, author, position, page, start_char, end_char,"
                " text) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                chunk_rows,
            )
            db.executemany("INSERT INTO index_fts (rowid, title, text) VALUES (?, ?, ?)", fts_rows)

    def remove(self, docs: Sequence[bytes]) -> None:
        with self.store.transaction() as db:
            self._delete_rows(db, docs)

    @staticmethod
    def _delete_rows(db: sqlite3.Connection, docs: Sequence[bytes]) -> None:
        for doc in docs:
            db.execute(
                "DELETE FROM index_fts WHERE rowid IN (SELECT id FROM index_chunks WHERE doc = ?)",
                (doc,),
            )
            db.execute("DELETE FROM index_chunks WHERE doc = ?", (doc,))
            db.execute("DELETE FROM index_docs WHERE doc = ?", (doc,))

    # -- reading ---------------------------------------------------------------

    def _filter_sql(self, filters: Filters) -> tuple[str, list[Any]]:
        """SQL conditions on index_chunks c: stored, newest version, and the user's filters."""
        sql = ["EXISTS (SELECT 1 FROM heads h WHERE h.id = c.doc)"]
        params: list[Any] = []
        if filters.authors:
            sql.append(f"c.author IN ({_marks(len(filters.authors))})")
            params += sorted(filters.authors)
        if filters.blocked:
            sql.append(f"c.author NOT IN ({_marks(len(filters.blocked))})")
            params += sorted(filters.blocked)
        if filters.tags:
            sql.append(
                "EXISTS (SELECT 1 FROM object_tags t WHERE t.id = c.doc"
                f" AND t.tag IN ({_marks(len(filters.tags))}))"
            )
            params += sorted(filters.tags)
        return " AND ".join(sql), params

    def passage_ids(
        self, keys: Sequence[tuple[bytes, int]], filters: Filters = NO_FILTERS
    ) -> dict[tuple[bytes, int], int]:
        """The passage id of each (doc, position) that exists and passes `filters`."""
        if not keys:
            return {}
        where, params = self._filter_sql(filters)
        # OR-ed equalities, not `(doc, position) IN (VALUES ...)`: SQLite answers
        # each from the unique index, where the row-value form scans the table.
        wanted = " OR ".join("(c.doc = ? AND c.position = ?)" for _ in keys)
        rows = self.store.query(
            f"SELECT c.doc, c.position, c.id FROM index_chunks c WHERE ({wanted}) AND {where}",
            [v for key in keys for v in key] + params,
        )
        return {(bytes(doc), pos): cid for doc, pos, cid in rows}

    def search(self, text: str, n: int, filters: Filters = NO_FILTERS) -> list[Scored]:
        """Passages by BM25 over their words (porter-stemmed), best first."""
        query = match_query(text)
        if query is None or n <= 0:
            return []
        where, params = self._filter_sql(filters)
        if filters == NO_FILTERS:
            # Rank first, then check the few top passages: joining every match
            # before sorting costs several times more. Those checks (stored, newest
            # version) rarely drop anything, so a small margin keeps n results.
            rows = self.store.query(
                "SELECT c.id, r.score FROM (SELECT rowid, bm25(index_fts, ?, ?) AS score"
                " FROM index_fts WHERE index_fts MATCH ? ORDER BY score LIMIT ?) r"
                f" JOIN index_chunks c ON c.id = r.rowid WHERE {where} ORDER BY r.score",
                [TITLE_WEIGHT, TEXT_WEIGHT, query, n + LEXICAL_MARGIN, *params],
            )
        else:  # the user's filters may reject most matches: filter while ranking
            rows = self.store.query(
                "SELECT c.id, bm25(index_fts, ?, ?) AS score FROM index_fts"
                " JOIN index_chunks c ON c.id = index_fts.rowid"
                f" WHERE index_fts MATCH ? AND {where} ORDER BY score LIMIT ?",
                [TITLE_WEIGHT, TEXT_WEIGHT, query, *params, n],
            )
        return [Scored(int(cid), -float(score)) for cid, score in rows[:n]]

    def search_documents(
        self, text: str, n: int, filters: Filters = NO_FILTERS
    ) -> list[DocumentHit]:
        """Current documents by their best-matching passage: all the words if any passage
        has them all, else any of them. Best first, one hit per document."""
        for query in (all_words_query(text), match_query(text)):
            if query is None or n <= 0:
                return []
            rows = self._snippet_rows(query, filters, SNIPPET_MARK, SNIPPET_TOKENS, n * 8)
            hits: dict[bytes, DocumentHit] = {}
            for doc, _, _, _, score, snippet in rows:
                key = bytes(doc)
                if key not in hits:
                    hits[key] = DocumentHit(key, -float(score), one_line(str(snippet)))
            if hits:
                return list(hits.values())[:n]
        return []

    def chunks(self, ids: Iterable[int]) -> dict[int, ChunkRow]:
        ids = list(ids)
        if not ids:
            return {}
        rows = self.store.query(
            "SELECT id, doc, author, position, page, start_char, end_char, text FROM index_chunks"
            f" WHERE id IN ({_marks(len(ids))})",
            ids,
        )
        return {
            int(r[0]): ChunkRow(int(r[0]), bytes(r[1]), bytes(r[2]), r[3], r[4], r[5], r[6], r[7])
            for r in rows
        }

    def snippets(self, text: str, n: int, *, mark_open: str, mark_close: str) -> list[Snippet]:
        """Passages matching `text` by BM25, best first, each with a snippet of its
        text in which matched words sit between `mark_open` and `mark_close`."""
        query = match_query(text)
        if query is None or n <= 0:
            return []
        rows = self._snippet_rows(query, NO_FILTERS, (mark_open, mark_close), 24, n)
        return [Snippet(bytes(r[0]), int(r[1]), int(r[2]), int(r[3]), str(r[5])) for r in rows]

    def _snippet_rows(
        self, query: str, filters: Filters, marks: tuple[str, str], tokens: int, limit: int
    ) -> list[tuple[Any, ...]]:
        """(doc, position, start, end, bm25 score, snippet) of the best `limit` passages."""
        where, params = self._filter_sql(filters)
        return self.store.query(
            "SELECT c.doc, c.position, c.start_char, c.end_char, bm25(index_fts, ?, ?) AS score,"
            " snippet(index_fts, 1, ?, ?, '…', ?) FROM index_fts"
            " JOIN index_chunks c ON c.id = index_fts.rowid"
            f" WHERE index_fts MATCH ? AND {where} ORDER BY score LIMIT ?",
            [TITLE_WEIGHT, TEXT_WEIGHT, *marks, tokens, query, *params, limit],
        )
