"""The search index: passage vectors (a `VectorStore`) and passage words (SQLite FTS5).

Both are derived from the object store and can be rebuilt from it at any time
(`commons reindex`). SQLite is the authority on which passages exist: a
vector whose passage row is gone is ignored, so a crash between the two
writes can leave at most a harmless orphan vector, which the next write of
that document overwrites (vector ids are `doc:position`, not random).

The index is progressive. `sync_words()` makes every stored head document
searchable by words (chunking and FTS5 only: fast) and drops the passages of
documents that were retracted or replaced; `sync_dense()` then embeds, a round
of documents at a time, those that have words but no vectors yet (the
`embedded` flag of `index_docs`). Store events wake a background worker that
does both, so documents that arrive by gossip become searchable on their own;
readers call `sync_words()` before a search and never wait for the embedding
backlog, and `state()` says how far it has come.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from commons.model.objects import Document, SignedObject
from commons.search.chunking import chunk_text, embedding_text
from commons.search.embedding import Embedder
from commons.search.index_state import DenseState, IndexProgress, SyncReport
from commons.search.lexical import NO_FILTERS, ChunkRow, Filters, LexicalIndex, Passages, Scored
from commons.search.vectors import VectorFilter, VectorStore
from commons.storage.store import Added, Event, ObjectStore, Removed

log = logging.getLogger(__name__)

BATCH_DOCUMENTS = 64  # documents per embedding round (one write of vectors)
WORDS_BATCH = 200  # documents per transaction of words, between which closing can stop it
# Texts per call to the embedder, between which closing can stop it: a full-length
# passage costs the model tens of milliseconds of CPU, so eight keep a stop well
# under a second, and the model is as fast per text as in larger calls.
EMBED_SLICE = 8
# The background worker pauses between its slices while a question is being
# answered, so an answer waits for at most one slice instead of sharing the CPU
# with the whole backlog.
BACKGROUND_SLICE = EMBED_SLICE
MAX_PAUSE_S = 10.0  # a steady stream of questions still lets a slice through this often
# It gives way to documents arriving (a peer's flood) too, until none has come for
# this long: receiving them all first is what makes a joined peer answer soon.
ARRIVAL_QUIET_S = 1.0
RATE_WINDOW_S = 60.0  # the embedding rate is measured over the last minute


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
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.vectors = vectors
        self.words = LexicalIndex(store)
        self.batch_documents = batch_documents
        self.progress: Progress | None = None  # called by whichever thread indexes
        self._monotonic = monotonic
        self._words_lock = threading.Lock()  # writes of words (and removals)
        self._embed_lock = threading.Lock()  # one embedding pass at a time
        self._vectors_io = threading.Lock()  # calls that write the vector store
        self._rate: collections.deque[tuple[float, int]] = collections.deque()
        self._wake = threading.Condition()
        self._dirty = False
        self._closing = False
        self._held = 0  # open `held()` blocks; the worker waits while any is open
        self._answering = 0  # open `answering()` blocks; background embedding pauses
        self._answers = threading.Condition()
        self._last_arrival: float | None = None  # monotonic time a document last arrived
        self._worker: threading.Thread | None = None
        self._check_state()

    # -- lifecycle -------------------------------------------------------------

    def _check_state(self) -> None:
        """Start over if the passages were embedded by another model, or vectors were lost."""
        current = f"{self.embedder.name}/{self.embedder.dimension}"
        stamped = self.words.get_meta("embedder")
        if stamped == current:
            if self.vectors.count() >= self.words.dense_counts().embedded_chunks:
                return
            # The vectors were lost or replaced (or never kept, in memory): the word
            # index alone would answer, quietly worse, so rebuild both.
            log.warning("the vector index has fewer passages than the word index; rebuilding")
        elif stamped is not None:
            log.warning("embedder changed from %s to %s; rebuilding the index", stamped, current)
        with self._words_lock, self._embed_lock:
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
            if isinstance(event, Added):
                self._last_arrival = self._monotonic()
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

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """A question is being answered: background embedding pauses (between slices,
        for at most MAX_PAUSE_S at a time) so that the answer has the CPU."""
        with self._answers:
            self._answering += 1
        try:
            yield
        finally:
            with self._answers:
                self._answering -= 1
                self._answers.notify_all()

    def _arriving(self) -> bool:
        last = self._last_arrival
        return last is not None and self._monotonic() - last < ARRIVAL_QUIET_S

    def _must_give_way(self) -> bool:
        return bool(self._answering) or self._arriving()

    def _give_way(self) -> None:
        """Wait while a question is answered or documents arrive (MAX_PAUSE_S at most)."""
        log.debug("embedding paused while a question is answered or documents arrive")
        deadline = self._monotonic() + MAX_PAUSE_S
        with self._answers:
            while self._must_give_way() and not self._closing:
                left = deadline - self._monotonic()
                if left <= 0:
                    break
                self._answers.wait(min(left, ARRIVAL_QUIET_S))

    def _run(self) -> None:
        while True:
            with self._wake:
                while (not self._dirty or self._held) and not self._closing:
                    self._wake.wait()
                if self._closing:
                    return
                self._dirty = False
            try:
                self.sync_words()
                self.sync_dense(yielding=True)
            except Exception:  # keep following the store; the next event retries
                log.exception("indexing failed")

    def close(self) -> None:
        with contextlib.suppress(ValueError):  # never subscribed
            self.store.unsubscribe(self._on_event)
        with self._wake:
            self._closing = True
            self._wake.notify()
        with self._answers:
            self._answers.notify_all()
        if self._worker is not None:
            self._worker.join()
        # Wait for a writer of words in another thread to finish its batch.
        with self._words_lock, self._embed_lock, self._vectors_io:
            self.vectors.close()

    # -- writing ---------------------------------------------------------------

    def pending(self) -> list[bytes]:
        """Head documents in the store that are not indexed, oldest first."""
        return self.words.pending()

    def stale(self) -> list[bytes]:
        """Indexed documents that were retracted or replaced by a newer version."""
        return self.words.stale()

    def sync(self, *, wait: bool = True) -> SyncReport:
        """Bring words and vectors up to the store. With wait=False, skip whatever
        another thread is doing already."""
        report = self.sync_words(wait=wait)
        self.sync_dense(wait=wait)
        return report

    def sync_words(self, *, wait: bool = True) -> SyncReport:
        """Make every stored head document searchable by words, and drop retracted or
        replaced ones. Fast (no model): readers call it before each search.

        The lock is taken a batch at a time, so `index_words_now` (a document
        just added here) never waits for a whole backlog from peers."""
        if not self._words_lock.acquire(blocking=wait):
            return SyncReport()
        try:
            removed = self.stale()
            if removed:
                self._remove(removed)
            # What was indexed already when we looked: whatever is indexed by the time
            # its batch comes (by index_words_now meanwhile) is left as it is.
            plan = [(batch, set(self.words.indexed(batch)))
                    for batch in _batches(self.pending(), WORDS_BATCH)]
        finally:
            self._words_lock.release()
        indexed = chunks = 0
        for batch, was_indexed in plan:
            if self._closing:  # the rest waits for the next start
                break
            with self._words_lock:
                done_meanwhile = set(self.words.indexed(batch)) - was_indexed
                objs = [o for o in (self._load(doc) for doc in batch
                                    if doc not in done_meanwhile) if o is not None]
                chunks += self._write_words(objs)
                indexed += len(objs)
        if indexed or removed:
            log.info("indexed the words of %d documents (%d passages), dropped %d",
                     indexed, chunks, len(removed))
        if indexed:
            self.wake()  # their vectors follow in the background
        return SyncReport(indexed, chunks, len(removed))

    def index_words_now(self, docs: Sequence[bytes]) -> None:
        """Make these documents searchable by words at once, ahead of any backlog (and
        drop what they replaced); the worker does the rest."""
        with self._words_lock:
            removed = self.stale()
            if removed:
                self._remove(removed)
            known = set(self.words.indexed(docs))
            objs = [o for o in (self._load(doc) for doc in docs if doc not in known)
                    if o is not None]
            self._write_words(objs)

    def sync_dense(self, *, wait: bool = True, yielding: bool = False) -> int:
        """Embed the passages of every document that has words but no vectors yet,
        oldest first, a round of documents at a time. Returns the documents embedded.
        Stops early when the index closes (or, if `yielding`, while it is held)."""
        if not self._embed_lock.acquire(blocking=wait):
            return 0
        done = 0
        try:
            while not self._closing and not (yielding and self._held):
                docs = self.words.unembedded(self.batch_documents)
                if not docs or not self._embed_docs(docs, background=yielding):
                    break
                done += len(docs)
        finally:
            self._embed_lock.release()
        if done:
            log.info("embedded %d documents", done)
        return done

    def embed_now(self, docs: Sequence[bytes]) -> None:
        """Embed these documents at once, ahead of any backlog (a document just added
        here should not wait behind thousands that arrived from peers)."""
        self._embed_docs(list(docs))

    def reset(self) -> None:
        """Forget both indexes (their vectors were lost); `sync_words` and the worker
        fill them again."""
        with self._words_lock, self._embed_lock:
            self._clear()

    def rebuild(self) -> SyncReport:
        """Drop both indexes and build them again from the store."""
        with self._words_lock, self._embed_lock:
            self._clear()
        return self.sync()

    def _load(self, doc: bytes) -> SignedObject | None:
        return self.store.get(doc) if self.store.has(doc) else None  # retracted since we looked

    def _write_words(self, objs: Sequence[SignedObject]) -> int:
        plan: list[Passages] = []
        for obj in objs:
            content = obj.content
            assert isinstance(content, Document)
            plan.append(Passages(obj.id, obj.author, content.title, chunk_text(content.body)))
        # A document indexed before (by an older chunker) may have had more passages.
        known = self.words.indexed(obj.id for obj in objs)
        if known:
            with self._vectors_io:
                self.vectors.delete_docs([d.hex() for d in known])
        self.words.write(plan, replacing=known, embedded=False)
        return sum(len(p.chunks) for p in plan)

    def _embed_docs(self, docs: list[bytes], *, background: bool = False) -> bool:
        """Vectors for the passages of `docs`; False if the index closed meanwhile.
        In the `background`, give way to questions being answered."""
        rows = self.words.to_embed(docs)
        texts = [embedding_text(title, row.text) for row, title in rows]
        vectors = self._embed(texts, background=background)
        if vectors is None:
            return False
        ids = [f"{row.doc.hex()}:{row.position}" for row, _ in rows]
        metadatas: list[dict[str, Any]] = [
            {
                "doc": row.doc.hex(),
                "author": row.author.hex(),
                "position": row.position,
                "page": row.page or 0,
                "start": row.start,
                "end": row.end,
            }
            for row, _ in rows
        ]
        with self._vectors_io:
            if ids:
                self.vectors.upsert(ids, vectors, metadatas)
            kept = set(self.words.mark_embedded(docs))
            gone = [d.hex() for d in docs if d not in kept]  # retracted while we embedded
            if gone:
                self.vectors.delete_docs(gone)
        self._rate.append((self._monotonic(), len(docs)))
        self._report(IndexProgress(0, len(docs)))
        return True

    def _embed(self, texts: list[str], *, background: bool = False) -> list[Any] | None:
        """Vectors for texts, longest first in slices (less padding, progress as it goes,
        a place to stop when the index closes and, in the background, to give way
        to answers); None if it closed."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vectors: list[Any] = [None] * len(texts)
        size = BACKGROUND_SLICE if background else EMBED_SLICE
        for i in range(0, len(order), size):
            if background and self._must_give_way():
                self._give_way()
            if self._closing:
                return None
            part = order[i : i + size]
            for row, vector in zip(part, self.embedder.embed_batch([texts[j] for j in part]),
                                   strict=True):
                vectors[row] = vector
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
        with self._vectors_io:
            self.vectors.delete_docs([d.hex() for d in docs])

    # -- reading ---------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        docs, chunks = self.words.counts()
        return {"documents": docs, "chunks": chunks, "pending": len(self.pending())}

    def state(self) -> DenseState:
        """How far the dense index has come, and how fast it goes."""
        counts = self.words.dense_counts()
        now = self._monotonic()
        while self._rate and self._rate[0][0] < now - RATE_WINDOW_S:
            self._rate.popleft()
        rate = 0.0
        if self._rate:
            span = max(now - self._rate[0][0], 1.0)
            rate = sum(n for _, n in self._rate) / span
        return DenseState(counts.documents, counts.embedded, round(rate, 2))

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
