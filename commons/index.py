"""The search indexes: passage vectors in Chroma, passage words in SQLite FTS5.

Both are derived from the object store and can be rebuilt from it at any time
(`commons reindex`). SQLite is the authority on which passages exist: a
vector whose passage row is gone is ignored, so a crash between the two
writes can leave at most a harmless orphan vector, which the next write of
that document overwrites (vector ids are `doc:position`, not random).

The index follows the store: `SearchIndex.sync()` indexes the current head
versions of documents that are stored but not indexed, and drops the passages
of documents that were retracted or replaced. Store events wake a background
worker that calls it, so documents that arrive by gossip become searchable on
their own; readers call `sync(wait=False)` to catch up without queueing
behind a long backlog.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from commons.chunking import Chunk, chunk_text, embedding_text
from commons.embedding import Embedder
from commons.errors import CommonsError
from commons.objects import Document, SignedObject
from commons.store import Added, Event, ObjectStore, Removed, execute_script
from commons.textutil import content_words

log = logging.getLogger(__name__)

BATCH_DOCUMENTS = 64  # documents per transaction
EMBED_SLICE = 256  # texts per call to the embedder (it batches again inside)
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


MIGRATIONS = [_m1_index]


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
class IndexProgress:
    """Work done since the previous report (reports come after each embedding batch)."""

    chunks: int  # passages embedded and written
    documents: int  # documents finished


@dataclass(frozen=True)
class SyncReport:
    indexed: int = 0
    chunks: int = 0
    removed: int = 0

    def to_json(self) -> dict[str, int]:
        return {"indexed": self.indexed, "chunks": self.chunks, "removed": self.removed}


Progress = Callable[[IndexProgress], None]


class VectorStore(Protocol):
    """Where passage vectors live (Chroma, embedded or a server)."""

    def upsert(self, ids: list[str], vectors: Any, metadatas: list[dict[str, Any]]) -> None: ...

    def query(
        self, vector: Sequence[float], n: int, where: dict[str, Any] | None
    ) -> list[tuple[str, float]]: ...

    def delete_docs(self, docs: list[str]) -> None: ...

    def count(self) -> int: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


class ChromaVectors:
    """One Chroma collection with cosine distance and no embedding function of Chroma's."""

    def __init__(self, client: Any, name: str, *, owns_client: bool = True) -> None:
        self.client = client
        self.name = name
        self._owns_client = owns_client
        self._collection = self._open()
        self._max_batch = int(client.get_max_batch_size())

    def _open(self) -> Any:
        # embedding_function=None: we always pass vectors we computed; Chroma's
        # default function would download a model.
        return self.client.get_or_create_collection(
            self.name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
        )

    def upsert(self, ids: list[str], vectors: Any, metadatas: list[dict[str, Any]]) -> None:
        for i in range(0, len(ids), self._max_batch):
            j = i + self._max_batch
            self._collection.upsert(ids=ids[i:j], embeddings=vectors[i:j], metadatas=metadatas[i:j])

    def query(
        self, vector: Sequence[float], n: int, where: dict[str, Any] | None
    ) -> list[tuple[str, float]]:
        if n <= 0:
            return []
        result = self._collection.query(
            query_embeddings=[list(map(float, vector))],
            n_results=n,
            where=where,
            include=["distances"],
        )
        ids = result["ids"][0] if result["ids"] else []
        distances = result["distances"][0] if result.get("distances") else []
        return [(i, 1.0 - float(d)) for i, d in zip(ids, distances, strict=False)]

    def delete_docs(self, docs: list[str]) -> None:
        for i in range(0, len(docs), 500):
            self._collection.delete(where={"doc": {"$in": docs[i : i + 500]}})

    def count(self) -> int:
        return int(self._collection.count())

    def reset(self) -> None:
        try:
            self.client.delete_collection(self.name)
        except Exception:  # absent already: nothing to drop
            log.debug("no collection %s to drop", self.name)
        self._collection = self._open()

    def drop_others(self, prefix: str) -> None:
        """Drop collections of this home made with another embedder."""
        for collection in self.client.list_collections():
            name = collection if isinstance(collection, str) else collection.name
            if name.startswith(prefix) and name != self.name:
                log.info("dropping stale vector collection %s", name)
                self.client.delete_collection(name)

    def close(self) -> None:
        if self._owns_client and hasattr(self.client, "close"):
            self.client.close()


def open_chroma(path: str, url: str | None) -> Any:
    """An embedded Chroma at `path`, or a client of the `chroma run` server at `url`."""
    try:
        import chromadb
        from chromadb.config import Settings
    except ImportError as exc:  # pragma: no cover - chromadb is a dependency
        raise CommonsError("chromadb is not installed; run `make install`") from exc
    settings = Settings(anonymized_telemetry=False)
    if url is None:
        return chromadb.PersistentClient(path=path, settings=settings)
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CommonsError(f"--index-url {url!r} is not an http(s) URL of a Chroma server")
    port = parts.port or (443 if parts.scheme == "https" else 8000)
    try:
        return chromadb.HttpClient(
            host=parts.hostname, port=port, ssl=parts.scheme == "https", settings=settings
        )
    except Exception as exc:
        raise CommonsError(
            f"cannot reach the Chroma server at {url}: {exc}; start it with `chroma run`"
        ) from exc


def match_query(text: str) -> str | None:
    """An FTS5 MATCH expression: the question's content words, quoted, OR-ed.

    Every term is a double-quoted string of word characters, so nothing a
    user types can be read as FTS5 syntax (AND, NEAR, *, column filters).
    """
    terms = [t for t in content_words(text) if t.strip("_")][:MAX_QUERY_TERMS]
    if not terms:
        return None
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


def _filter_sql(filters: Filters) -> tuple[str, list[Any]]:
    """SQL conditions on index_chunks c: stored, newest version, and the user's filters."""
    sql = [
        "EXISTS (SELECT 1 FROM objects o WHERE o.id = c.doc)",
        "NOT EXISTS (SELECT 1 FROM versions v JOIN objects n ON n.id = v.new"
        " WHERE v.old = c.doc AND v.author = c.author)",
    ]
    params: list[Any] = []
    if filters.authors:
        sql.append(f"c.author IN ({','.join('?' * len(filters.authors))})")
        params += sorted(filters.authors)
    if filters.blocked:
        sql.append(f"c.author NOT IN ({','.join('?' * len(filters.blocked))})")
        params += sorted(filters.blocked)
    if filters.tags:
        sql.append(
            "EXISTS (SELECT 1 FROM tags t WHERE t.id = c.doc AND t.tag IN"
            f" ({','.join('?' * len(filters.tags))}))"
        )
        params += sorted(filters.tags)
    return " AND ".join(sql), params


def _chroma_where(filters: Filters) -> dict[str, Any] | None:
    clauses: list[dict[str, Any]] = []
    if filters.authors:
        clauses.append({"author": {"$in": sorted(a.hex() for a in filters.authors)}})
    if filters.blocked:
        clauses.append({"author": {"$nin": sorted(b.hex() for b in filters.blocked)}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _batches(items: Sequence[bytes], size: int) -> Iterator[Sequence[bytes]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


_COLLECTION_CHARS = re.compile(r"[^a-zA-Z0-9._-]+")


def collection_name(namespace: str, embedder: Embedder) -> str:
    """Chroma collection of one home and one embedder (a server may hold many homes)."""
    name = f"commons-{namespace}-{embedder.name}-{embedder.dimension}"
    return _COLLECTION_CHARS.sub("-", name)[:500]


class SearchIndex:
    """Passages of the head documents in the store, searchable by meaning and by words."""

    def __init__(
        self,
        store: ObjectStore,
        embedder: Embedder,
        vectors: VectorStore,
        *,
        batch_documents: int = BATCH_DOCUMENTS,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.vectors = vectors
        self.batch_documents = batch_documents
        self.progress: Progress | None = None  # called by whichever thread indexes
        self._write_lock = threading.Lock()
        self._wake = threading.Condition()
        self._dirty = False
        self._closing = False
        self._worker: threading.Thread | None = None
        store.migrate("index", MIGRATIONS)
        self._check_state()

    # -- lifecycle -------------------------------------------------------------

    def _check_state(self) -> None:
        """Start over if the passages were embedded by another model, or vectors were lost."""
        current = f"{self.embedder.name}/{self.embedder.dimension}"
        rows = self.store.query("SELECT value FROM index_meta WHERE key = 'embedder'")
        if rows and rows[0][0] == current:
            chunks = int(self.store.query("SELECT count(*) FROM index_chunks")[0][0])
            if self.vectors.count() >= chunks:
                return
            # The vector directory was lost or replaced: the word index alone would
            # answer, quietly worse, so rebuild both.
            log.warning("the vector index has fewer passages than the word index; rebuilding")
        elif rows:
            log.warning("embedder changed from %s to %s; rebuilding the index", rows[0][0], current)
        with self._write_lock:
            self._clear()
            with self.store.transaction() as db:
                db.execute(
                    "INSERT OR REPLACE INTO index_meta (key, value) VALUES ('embedder', ?)",
                    (current,),
                )

    def _clear(self) -> None:
        with self.store.transaction() as db:
            db.execute("DELETE FROM index_fts")
            db.execute("DELETE FROM index_chunks")
            db.execute("DELETE FROM index_docs")
        self.vectors.reset()

    def listen(self) -> None:
        """Follow the store: each added or removed object wakes the indexing worker."""
        self.store.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, Added) and event.obj.kind not in ("document", "retraction"):
            return
        if isinstance(event, Added | Removed):
            self.wake()

    def wake(self) -> None:
        with self._wake:
            if self._closing:
                return
            self._dirty = True
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._run, name="commons-indexer", daemon=True
                )
                self._worker.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._dirty and not self._closing:
                    self._wake.wait()
                if self._closing:
                    return
                self._dirty = False
            try:
                self.sync()
            except Exception:  # keep following the store; the next event retries
                log.exception("indexing failed")

    def close(self) -> None:
        with contextlib.suppress(ValueError):  # never subscribed
            self.store.unsubscribe(self._on_event)
        with self._wake:
            self._closing = True
            self._wake.notify()
        if self._worker is not None:
            self._worker.join()
        with self._write_lock:
            self.vectors.close()

    # -- writing ---------------------------------------------------------------

    def pending(self) -> list[bytes]:
        """Head documents in the store that are not indexed, oldest first."""
        rows = self.store.query(
            "SELECT o.id FROM objects o WHERE o.kind = 'document'"
            " AND NOT EXISTS (SELECT 1 FROM versions v JOIN objects n ON n.id = v.new"
            "   WHERE v.old = o.id AND v.author = o.author)"
            " AND NOT EXISTS (SELECT 1 FROM index_docs d WHERE d.doc = o.id)"
            " ORDER BY o.created_at, o.id"
        )
        return [bytes(r[0]) for r in rows]

    def stale(self) -> list[bytes]:
        """Indexed documents that were retracted or replaced by a newer version."""
        rows = self.store.query(
            "SELECT d.doc FROM index_docs d WHERE NOT EXISTS"
            " (SELECT 1 FROM objects o WHERE o.id = d.doc)"
            " OR EXISTS (SELECT 1 FROM versions v JOIN objects n ON n.id = v.new"
            "   WHERE v.old = d.doc AND v.author = d.author)"
        )
        return [bytes(r[0]) for r in rows]

    def sync(self, *, wait: bool = True) -> SyncReport:
        """Bring the index up to the store. With wait=False, skip if another thread is at it."""
        if not self._write_lock.acquire(blocking=wait):
            return SyncReport()
        try:
            removed = self.stale()
            if removed:
                self._remove(removed)
            pending = self.pending()
            indexed = chunks = 0
            for batch in _batches(pending, self.batch_documents):
                docs = [self._load(doc) for doc in batch]
                chunks += self._index([d for d in docs if d is not None])
                indexed += len(batch)
            if indexed or removed:
                log.info("indexed %d documents (%d chunks), dropped %d", indexed, chunks,
                         len(removed))
            return SyncReport(indexed, chunks, len(removed))
        finally:
            self._write_lock.release()

    def rebuild(self) -> SyncReport:
        """Drop both indexes and build them again from the store."""
        with self._write_lock:
            self._clear()
        return self.sync()

    def _load(self, doc: bytes) -> SignedObject | None:
        rows = self.store.query("SELECT 1 FROM objects WHERE id = ?", (doc,))
        return self.store.get(doc) if rows else None  # retracted since we looked

    def _index(self, objs: Sequence[SignedObject]) -> int:
        plan: list[tuple[SignedObject, Document, list[Chunk]]] = []
        for obj in objs:
            content = obj.content
            assert isinstance(content, Document)
            plan.append((obj, content, chunk_text(content.body)))
        texts = [embedding_text(d.title, c.text) for _, d, chunks in plan for c in chunks]
        vectors = self._embed(texts)
        ids: list[str] = []
        metadatas: list[dict[str, Any]] = []
        for obj, _, chunks in plan:
            for c in chunks:
                ids.append(f"{obj.id.hex()}:{c.position}")
                metadatas.append(
                    {
                        "doc": obj.id.hex(),
                        "author": obj.author.hex(),
                        "position": c.position,
                        "page": c.page or 0,
                        "start": c.start,
                        "end": c.end,
                    }
                )
        # A document indexed before (by an older chunker) may have had more passages.
        known = self._indexed({obj.id for obj in objs})
        if known:
            self.vectors.delete_docs([d.hex() for d in known])
        if ids:
            self.vectors.upsert(ids, vectors, metadatas)
        with self.store.transaction() as db:
            self._delete_rows(db, known)
            next_id = int(db.execute("SELECT coalesce(max(id), 0) FROM index_chunks").fetchone()[0])
            chunk_rows = []
            fts_rows = []
            for obj, content, chunks in plan:
                for c in chunks:
                    next_id += 1
                    chunk_rows.append(
                        (next_id, obj.id, obj.author, c.position, c.page, c.start, c.end, c.text)
                    )
                    fts_rows.append((next_id, content.title, c.text))
                db.execute(
                    "INSERT OR REPLACE INTO index_docs (doc, author, chunks) VALUES (?, ?, ?)",
                    (obj.id, obj.author, len(chunks)),
                )
            db.executemany(
                "INSERT INTO index_chunks (id, doc, author, position, page, start_char, end_char,"
                " text) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                chunk_rows,
            )
            db.executemany("INSERT INTO index_fts (rowid, title, text) VALUES (?, ?, ?)", fts_rows)
        self._report(IndexProgress(0, len(objs)))
        return len(ids)

    def _embed(self, texts: list[str]) -> list[Any]:
        """Vectors for texts, in slices so that a large document reports progress as it goes."""
        vectors: list[Any] = []
        for i in range(0, len(texts), EMBED_SLICE):
            part = texts[i : i + EMBED_SLICE]
            vectors.extend(list(self.embedder.embed_batch(part)))
            self._report(IndexProgress(len(part), 0))
        return vectors

    def _report(self, progress: IndexProgress) -> None:
        if self.progress is not None:
            try:
                self.progress(progress)
            except Exception:  # a broken progress bar must not stop indexing
                log.exception("progress callback failed")

    def _indexed(self, docs: Iterable[bytes]) -> list[bytes]:
        docs = list(docs)
        if not docs:
            return []
        rows = self.store.query(
            f"SELECT doc FROM index_docs WHERE doc IN ({','.join('?' * len(docs))})", docs
        )
        return [bytes(r[0]) for r in rows]

    @staticmethod
    def _delete_rows(db: sqlite3.Connection, docs: Sequence[bytes]) -> None:
        for doc in docs:
            db.execute(
                "DELETE FROM index_fts WHERE rowid IN (SELECT id FROM index_chunks WHERE doc = ?)",
                (doc,),
            )
            db.execute("DELETE FROM index_chunks WHERE doc = ?", (doc,))
            db.execute("DELETE FROM index_docs WHERE doc = ?", (doc,))

    def _remove(self, docs: Sequence[bytes]) -> None:
        with self.store.transaction() as db:
            self._delete_rows(db, docs)
        self.vectors.delete_docs([d.hex() for d in docs])

    # -- reading ---------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        docs, chunks = self.store.query(
            "SELECT (SELECT count(*) FROM index_docs), (SELECT count(*) FROM index_chunks)"
        )[0]
        return {"documents": int(docs), "chunks": int(chunks), "pending": len(self.pending())}

    def dense(self, vector: Sequence[float], n: int, filters: Filters = NO_FILTERS) -> list[Scored]:
        """Passages nearest in meaning, best first."""
        # Tag filters are not in Chroma's metadata: fetch more and filter here.
        fetch = n * 4 if filters.tags else n
        hits = self.vectors.query(vector, fetch, _chroma_where(filters))
        keys: list[tuple[bytes, int]] = []
        for vid, _ in hits:
            doc, _, position = vid.partition(":")
            keys.append((bytes.fromhex(doc), int(position)))
        if not keys:
            return []
        where, params = _filter_sql(filters)
        # OR-ed equalities, not `(doc, position) IN (VALUES ...)`: SQLite answers
        # each from the unique index, where the row-value form scans the table.
        wanted = " OR ".join("(c.doc = ? AND c.position = ?)" for _ in keys)
        rows = self.store.query(
            f"SELECT c.doc, c.position, c.id FROM index_chunks c WHERE ({wanted}) AND {where}",
            [v for key in keys for v in key] + params,
        )
        ids = {(bytes(doc), pos): cid for doc, pos, cid in rows}
        out = []
        for key, (_, score) in zip(keys, hits, strict=True):
            if key in ids:
                out.append(Scored(ids[key], score))
        return out[:n]

    def lexical(self, text: str, n: int, filters: Filters = NO_FILTERS) -> list[Scored]:
        """Passages by BM25 over their words (porter-stemmed), best first."""
        query = match_query(text)
        if query is None or n <= 0:
            return []
        where, params = _filter_sql(filters)
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

    def chunks(self, ids: Iterable[int]) -> dict[int, ChunkRow]:
        ids = list(ids)
        if not ids:
            return {}
        rows = self.store.query(
            "SELECT id, doc, author, position, page, start_char, end_char, text FROM index_chunks"
            f" WHERE id IN ({','.join('?' * len(ids))})",
            ids,
        )
        return {
            int(r[0]): ChunkRow(int(r[0]), bytes(r[1]), bytes(r[2]), r[3], r[4], r[5], r[6], r[7])
            for r in rows
        }
