"""The search index: passage vectors (a `VectorStore`) and passage words (SQLite FTS5).

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
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from commons.model.objects import Document, SignedObject
from commons.search.chunking import chunk_text, embedding_text
from commons.search.embedding import Embedder
from commons.search.lexical import NO_FILTERS, ChunkRow, Filters, LexicalIndex, Passages, Scored
from commons.search.vectors import VectorFilter, VectorStore
from commons.storage.store import Added, Event, ObjectStore, Removed

log = logging.getLogger(__name__)

BATCH_DOCUMENTS = 64  # documents per transaction
EMBED_SLICE = 256  # texts per call to the embedder (it batches again inside)


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


def _batches(items: Sequence[bytes], size: int) -> Iterator[Sequence[bytes]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def vector_filter(filters: Filters) -> VectorFilter:
    """The part of the user's filters that the vectors' metadata can answer (not tags)."""
    return VectorFilter(
        authors=frozenset(a.hex() for a in filters.authors),
        blocked=frozenset(b.hex() for b in filters.blocked),
    )


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
        self.words = LexicalIndex(store)
        self.batch_documents = batch_documents
        self.progress: Progress | None = None  # called by whichever thread indexes
        self._write_lock = threading.Lock()
        self._wake = threading.Condition()
        self._dirty = False
        self._closing = False
        self._held = 0  # open `held()` blocks; the worker waits while any is open
        self._worker: threading.Thread | None = None
        self._check_state()

    # -- lifecycle -------------------------------------------------------------

    def _check_state(self) -> None:
        """Start over if the passages were embedded by another model, or vectors were lost."""
        current = f"{self.embedder.name}/{self.embedder.dimension}"
        stamped = self.words.get_meta("embedder")
        if stamped == current:
            _, chunks = self.words.counts()
            if self.vectors.count() >= chunks:
                return
            # The vectors were lost or replaced (or never kept, in memory): the word
            # index alone would answer, quietly worse, so rebuild both.
            log.warning("the vector index has fewer passages than the word index; rebuilding")
        elif stamped is not None:
            log.warning("embedder changed from %s to %s; rebuilding the index", stamped, current)
        with self._write_lock:
            self._clear()
            self.words.set_meta("embedder", current)

    def _clear(self) -> None:
        self.words.clear()
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

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Keep the worker from indexing during the block; the caller syncs after it.

        Documents added inside the block are then embedded together, in one batched
        pass, instead of one at a time as each store event wakes the worker.
        """
        with self._wake:
            self._held += 1
        try:
            yield
        finally:
            with self._wake:
                self._held -= 1
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while (not self._dirty or self._held) and not self._closing:
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
        return self.words.pending()

    def stale(self) -> list[bytes]:
        """Indexed documents that were retracted or replaced by a newer version."""
        return self.words.stale()

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
        return self.store.get(doc) if self.store.has(doc) else None  # retracted since we looked

    def _index(self, objs: Sequence[SignedObject]) -> int:
        plan: list[Passages] = []
        for obj in objs:
            content = obj.content
            assert isinstance(content, Document)
            plan.append(Passages(obj.id, obj.author, content.title, chunk_text(content.body)))
        texts = [embedding_text(p.title, c.text) for p in plan for c in p.chunks]
        vectors = self._embed(texts)
        ids: list[str] = []
        metadatas: list[dict[str, Any]] = []
        for p in plan:
            for c in p.chunks:
                ids.append(f"{p.doc.hex()}:{c.position}")
                metadatas.append(
                    {
                        "doc": p.doc.hex(),
                        "author": p.author.hex(),
                        "position": c.position,
                        "page": c.page or 0,
                        "start": c.start,
                        "end": c.end,
                    }
                )
        # A document indexed before (by an older chunker) may have had more passages.
        known = self.words.indexed(obj.id for obj in objs)
        if known:
            self.vectors.delete_docs([d.hex() for d in known])
        if ids:
            self.vectors.upsert(ids, vectors, metadatas)
        self.words.write(plan, replacing=known)
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

    def _remove(self, docs: Sequence[bytes]) -> None:
        self.words.remove(docs)
        self.vectors.delete_docs([d.hex() for d in docs])

    # -- reading ---------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        docs, chunks = self.words.counts()
        return {"documents": docs, "chunks": chunks, "pending": len(self.pending())}

    def dense(self, vector: Sequence[float], n: int, filters: Filters = NO_FILTERS) -> list[Scored]:
        """Passages nearest in meaning, best first."""
        # Tag filters are not in the vectors' metadata: fetch more and filter here.
        fetch = n * 4 if filters.tags else n
        hits = self.vectors.query(vector, fetch, vector_filter(filters))
        keys: list[tuple[bytes, int]] = []
        for vid, _ in hits:
            doc, _, position = vid.partition(":")
            keys.append((bytes.fromhex(doc), int(position)))
        ids = self.words.passage_ids(keys, filters)
        out = []
        for key, (_, score) in zip(keys, hits, strict=True):
            if key in ids:
                out.append(Scored(ids[key], score))
        return out[:n]

    def lexical(self, text: str, n: int, filters: Filters = NO_FILTERS) -> list[Scored]:
        """Passages by BM25 over their words (porter-stemmed), best first."""
        return self.words.search(text, n, filters)

    def chunks(self, ids: Iterable[int]) -> dict[int, ChunkRow]:
        return self.words.chunks(ids)
