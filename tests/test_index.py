"""The search index follows the object store: adds, retractions, new versions, restarts."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import embedders
import pytest

from commons.model.identity import Identity
from commons.model.objects import Document, sign
from commons.search.embedding import HashEmbedder
from commons.search.indexer import SearchIndex
from commons.search.lexical import NO_FILTERS, Filters, match_query
from commons.search.vectors import memory_vectors
from commons.service import Commons
from commons.storage.home import HomePaths

NOW = 1_800_000_000  # the conftest clock's time


def doc_ids(index: SearchIndex, scored: list) -> list[bytes]:
    rows = index.chunks(s.chunk for s in scored)
    return list(dict.fromkeys(rows[s.chunk].doc for s in scored))


def dense_ids(c: Commons, text: str, n: int = 20, filters: Filters = NO_FILTERS) -> list[bytes]:
    index = c.search_index()
    vector = c.embedder.embed_batch([text])[0]
    return doc_ids(index, index.dense(vector, n, filters))


def lexical_ids(c: Commons, text: str, n: int = 20, filters: Filters = NO_FILTERS) -> list[bytes]:
    index = c.search_index()
    return doc_ids(index, index.lexical(text, n, filters))


def indexed_docs(c: Commons) -> set[bytes]:
    return {bytes(r[0]) for r in c.store.query("SELECT doc FROM index_docs")}


def vector_docs(c: Commons) -> set[str]:
    return c.search_index().vectors.docs()


# The `home` fixture keeps its vectors in memory. What depends on Chroma (vectors
# kept across opens, a collection per embedder) runs on `chroma_home`, and the
# tests of what each vector store does for the index run on both (`any_home`).


def open_home(root: Path, clock: Callable[[], int], *, chroma: bool) -> Commons:
    return Commons.init(
        HomePaths(root),
        clock=clock,
        name="tester",
        embedder=embedders.embedder_for_tests(),
        vectors=None if chroma else memory_vectors,
    )


@pytest.fixture
def chroma_home(tmp_path: Path, clock: Callable[[], int]) -> Iterator[Commons]:
    """A seeded home whose vectors are in Chroma, embedded in its index directory."""
    c = open_home(tmp_path / "home", clock, chroma=True)
    yield c
    c.close()


@pytest.fixture(params=["memory", "chroma"])
def any_home(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Callable[[], int]
) -> Iterator[Commons]:
    c = open_home(tmp_path / "home", clock, chroma=request.param == "chroma")
    yield c
    c.close()


@pytest.fixture
def reopen(tmp_path: Path, clock: Callable[[], int]) -> Iterator[Callable[[], Commons]]:
    """Open the Chroma test home again (closing the previous one), as a new process would."""
    opened: list[Commons] = []

    def open_again() -> Commons:
        for c in opened:
            c.close()
        opened.clear()
        c = Commons(
            HomePaths(tmp_path / "home"), clock=clock, embedder=embedders.embedder_for_tests()
        )
        opened.append(c)
        return c

    yield open_again
    for c in opened:
        c.close()


def test_first_use_indexes_the_seed_documents(any_home: Commons) -> None:
    home = any_home
    index = home.search_index()
    counts = index.counts()
    assert counts["documents"] == home.store.count("document") > 0
    assert counts["chunks"] >= counts["documents"] and counts["pending"] == 0
    assert index.vectors.count() == counts["chunks"]


def test_an_added_document_is_found_by_words_and_by_meaning(home: Commons) -> None:
    obj, _ = home.add_document(
        title="Drip irrigation", body="Drip lines water each plant slowly at its roots."
    )
    home.search_index().sync()
    assert lexical_ids(home, "how do drip lines work?")[0] == obj.id
    # porter stemming: "watering" and "plants" match "water" and "plant"
    assert obj.id in lexical_ids(home, "watering plants")
    assert dense_ids(home, "drip lines roots")[0] == obj.id


def test_a_retraction_removes_the_passages_from_both_indexes(any_home: Commons) -> None:
    home = any_home
    obj, _ = home.add_document(title="Old advice", body="Zinc buckets keep water fresh.")
    home.search_index().sync()
    assert obj.id in lexical_ids(home, "zinc buckets")
    home.retract(obj.id.hex())
    home.search_index().sync()
    assert obj.id not in indexed_docs(home)
    assert obj.id.hex() not in vector_docs(home)
    assert lexical_ids(home, "zinc buckets") == []
    assert obj.id not in dense_ids(home, "zinc buckets")


def test_a_replaced_version_is_never_answered_from(any_home: Commons) -> None:
    home = any_home
    old, _ = home.add_document(title="Tank size", body="A family tank holds 500 litres.")
    home.search_index().sync()
    new, _ = home.add_document(
        title="Tank size", body="A family tank holds 2000 litres.", replaces=old.id.hex()
    )
    home.search_index().sync()
    assert old.id not in indexed_docs(home) and new.id in indexed_docs(home)
    found = lexical_ids(home, "family tank litres")
    assert found[0] == new.id and old.id not in found
    assert old.id.hex() not in vector_docs(home)


def test_an_old_version_arriving_after_the_new_one_is_not_indexed(
    home: Commons, alice: Identity
) -> None:
    old = sign(Document(author=alice.public_key, created_at=NOW - 10, title="Seeds",
                        body="Sow beans in March."), alice)
    new = sign(Document(author=alice.public_key, created_at=NOW - 5, title="Seeds",
                        body="Sow beans in April.", replaces=old.id), alice)
    home.search_index()
    home.store.put(new, now=NOW, origin="http://peer.test")
    home.store.put(old, now=NOW, origin="http://peer.test")
    home.search_index().sync()
    assert new.id in indexed_docs(home) and old.id not in indexed_docs(home)


def test_documents_stored_while_the_index_was_closed_are_caught_up(
    chroma_home: Commons, reopen: Callable[[], Commons], alice: Identity
) -> None:
    home = chroma_home
    home.search_index()
    home.close()
    c = reopen()
    obj = sign(Document(author=alice.public_key, created_at=NOW, title="Compost",
                        body="Turn the compost heap every week."), alice)
    c.store.put(obj, now=NOW)  # the index is not open: nobody hears this
    c = reopen()
    assert obj.id in lexical_ids(c, "compost heap")
    assert c.search_index().counts()["pending"] == 0


def test_gossip_arrivals_are_indexed_by_the_worker_without_a_call(
    home: Commons, alice: Identity
) -> None:
    index = home.search_index()
    done = threading.Event()
    obj = sign(Document(author=alice.public_key, created_at=NOW, title="Bees",
                        body="Bees swarm in late spring."), alice)

    def progress(_: object) -> None:
        if obj.id in indexed_docs(home):
            done.set()

    index.progress = progress
    home.store.put(obj, now=NOW, origin="http://peer.test")  # as the sync intake does
    assert done.wait(60), "the worker never indexed the document"
    assert obj.id in lexical_ids(home, "bees swarm")


def test_reindex_rebuilds_both_indexes(any_home: Commons) -> None:
    home = any_home
    before = home.search_index().counts()
    home.store.query("DELETE FROM index_fts")  # damage the word index
    result = home.reindex()
    assert result["documents"] == before["documents"] and result["chunks"] == before["chunks"]
    assert home.search_index().vectors.count() == before["chunks"]
    assert lexical_ids(home, "community mirror")


def test_another_embedder_rebuilds_the_index(
    chroma_home: Commons, clock: Callable[[], int]
) -> None:
    home = chroma_home
    home.search_index()
    home.close()

    class Wider(HashEmbedder):
        name = "wider"

    c = Commons(home.paths, clock=clock, embedder=Wider(dimension=64))
    try:
        counts = c.search_index().counts()
        assert counts["documents"] == c.store.count("document")
        assert c.search_index().vectors.count() == counts["chunks"]
        assert len(c.embedder.embed_batch(["x"])[0]) == 64
    finally:
        c.close()


def test_lost_vectors_are_rebuilt_on_open(
    chroma_home: Commons, reopen: Callable[[], Commons]
) -> None:
    home = chroma_home
    chunks = home.search_index().counts()["chunks"]
    home.search_index().vectors.reset()  # as if the index directory were deleted
    home.close()
    c = reopen()
    assert c.search_index().vectors.count() == chunks


def test_filters_by_author_tag_and_block_list(any_home: Commons, alice: Identity) -> None:
    home = any_home
    mine, _ = home.add_document(title="Goats", body="Goats need shade.", tags=["farm"])
    theirs = sign(Document(author=alice.public_key, created_at=NOW, title="Goats too",
                           body="Goats need shade and water.", tags=("animals",)), alice)
    home.store.put(theirs, now=NOW)
    home.search_index().sync()
    me = home.public_key
    for ids in (lexical_ids, dense_ids):
        assert set(ids(home, "goats shade")[:2]) == {mine.id, theirs.id}
        assert ids(home, "goats shade", filters=Filters(authors=frozenset({me}))) == [mine.id]
        blocked = ids(home, "goats shade", filters=Filters(blocked=frozenset({me})))
        assert mine.id not in blocked and theirs.id in blocked
        tagged = ids(home, "goats shade", filters=Filters(tags=frozenset({"animals"})))
        assert tagged == [theirs.id]


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ('"', None),
        ('mirror" OR "x', "mirror"),
        ("NEAR(a b)", "near"),
        ("col:value*", "value"),
        ("-^+()", None),
        ("AND OR NOT", None),
        ("' ; DROP TABLE", "table"),
    ],
)
def test_user_text_never_breaks_the_word_search(home: Commons, text: str, word: str | None) -> None:
    """FTS5 syntax in a question is read as plain words: no error (the search raises
    on a syntax error), and the words in it still find what they match."""
    obj, _ = home.add_document(title="Odd words", body="Near the mirror, drop the value table.")
    home.search_index().sync()
    found = lexical_ids(home, text, n=50)
    if word is None:  # nothing but syntax and stopwords: nothing to look for
        assert found == []
    else:
        assert obj.id in found and obj.id in lexical_ids(home, word, n=50)
    assert lexical_ids(home, "mirror value table", n=50)  # the word index is intact


def test_match_query_quotes_content_words_only() -> None:
    assert match_query("How do I run a community mirror?") == '"run" OR "community" OR "mirror"'
    assert match_query("what is it?") is None
    assert match_query('say "hi" NEAR me') == '"say" OR "hi" OR "near"'


def test_concurrent_adds_and_searches_are_safe(home: Commons) -> None:
    index = home.search_index()
    errors: list[BaseException] = []

    def add(n: int) -> None:
        try:
            for i in range(5):
                home.add_document(title=f"Note {n}-{i}", body=f"Thread {n} note {i} about kites.")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def search() -> None:
        try:
            for _ in range(20):
                index.sync(wait=False)
                index.lexical("kites", 10)
                index.dense(home.embedder.embed_batch(["kites"])[0], 10)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(n,)) for n in range(3)]
    threads.append(threading.Thread(target=search))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    index.sync()
    assert index.counts()["pending"] == 0
    assert len(lexical_ids(home, "kites", n=50)) == 15


class GatedEmbedder(HashEmbedder):
    """Holds its first batch until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def embed_batch(self, texts: list[str]) -> list[list[float]]:
        self.entered.set()
        self.release.wait(timeout=60)
        return super().embed_batch(texts)


class WatchedEvent(threading.Event):
    """An event that calls `on_wait` when a thread starts waiting on it."""

    def __init__(self, on_wait: Callable[[], None]) -> None:
        super().__init__()
        self.on_wait = on_wait

    def wait(self, timeout: float | None = None) -> bool:
        self.on_wait()
        return super().wait(timeout)


def test_a_second_caller_waits_for_the_first_catch_up(
    home: Commons, clock: Callable[[], int]
) -> None:
    home.close()
    embedder = GatedEmbedder()
    c = Commons(HomePaths(home.paths.root), clock=clock, embedder=embedder,
                vectors=memory_vectors)
    # The second caller either waits for the first one's catch-up (on this event)
    # or returns at once: `moved` is set in both cases, so nothing here is timed.
    moved = threading.Event()
    c._index_ready = WatchedEvent(on_wait=moved.set)
    pending: list[int] = []  # what the second caller's index had yet to index

    def second_caller() -> None:
        try:
            pending.append(c.search_index().counts()["pending"])
        finally:
            moved.set()

    try:
        first = threading.Thread(target=c.search_index)
        first.start()
        assert embedder.entered.wait(timeout=60)  # the first caller is catching up, held
        second = threading.Thread(target=second_caller)
        second.start()
        assert moved.wait(timeout=60)
        assert pending == [], "the second caller got the index before the catch-up ended"
        embedder.release.set()
        first.join(timeout=60)
        second.join(timeout=60)
        assert pending == [0]
    finally:
        embedder.release.set()
        c.close()


def test_a_local_add_indexes_its_own_words_and_leaves_a_peers_backlog_to_the_worker(
    home: Commons, alice: Identity
) -> None:
    """F7: a document added here is searchable by words at once, without first
    indexing thousands of documents that arrived from peers."""
    from commons.api import LocalApi
    from commons.ingest import Extracted

    index = home.search_index(dense=False)
    with index.held():  # the worker waits, so what `add` itself does is what we see
        backlog = [sign(Document(author=alice.public_key, created_at=home.clock() - 100,
                                 title=f"Flood {i}", body=f"Page {i} of a flood."), alice)
                   for i in range(300)]
        for obj in backlog:
            home.store.put(obj, now=home.clock(), origin="key:peer")
        added = LocalApi(home).add(Extracted("Well water", "Boil it first.", "text/plain"),
                                   title=None, tags=[], licence=None, replaces=None)
        pending = set(index.pending())
        assert bytes.fromhex(added["id"]) in indexed_docs(home)
        assert {o.id for o in backlog} <= pending  # left to the worker
    home.search_index(dense=False)  # a reader catches up with everything
    assert not index.pending()
