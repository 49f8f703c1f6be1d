"""The search index follows the object store: adds, retractions, new versions, restarts."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from commons.embedding import HashEmbedder
from commons.home import HomePaths
from commons.identity import Identity
from commons.index import NO_FILTERS, Filters, SearchIndex, match_query
from commons.objects import Document, sign
from commons.service import Commons

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
    index = c.search_index()
    collection = index.vectors._collection  # type: ignore[attr-defined]
    return {m["doc"] for m in collection.get(include=["metadatas"])["metadatas"]}


@pytest.fixture
def reopen(tmp_path: Path, clock: Callable[[], int]) -> Iterator[Callable[[], Commons]]:
    """Open the test home again (closing the previous one), as a new process would."""
    opened: list[Commons] = []

    def open_home() -> Commons:
        for c in opened:
            c.close()
        opened.clear()
        c = Commons(HomePaths(tmp_path / "home"), clock=clock, embedder=HashEmbedder())
        opened.append(c)
        return c

    yield open_home
    for c in opened:
        c.close()


def test_first_use_indexes_the_seed_documents(home: Commons) -> None:
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


def test_a_retraction_removes_the_passages_from_both_indexes(home: Commons) -> None:
    obj, _ = home.add_document(title="Old advice", body="Zinc buckets keep water fresh.")
    home.search_index().sync()
    assert obj.id in lexical_ids(home, "zinc buckets")
    home.retract(obj.id.hex())
    home.search_index().sync()
    assert obj.id not in indexed_docs(home)
    assert obj.id.hex() not in vector_docs(home)
    assert lexical_ids(home, "zinc buckets") == []
    assert obj.id not in dense_ids(home, "zinc buckets")


def test_a_replaced_version_is_never_answered_from(home: Commons) -> None:
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
    home: Commons, reopen: Callable[[], Commons], alice: Identity
) -> None:
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


def test_reindex_rebuilds_both_indexes(home: Commons) -> None:
    before = home.search_index().counts()
    home.store.query("DELETE FROM index_fts")  # damage the word index
    result = home.reindex()
    assert result["documents"] == before["documents"] and result["chunks"] == before["chunks"]
    assert home.search_index().vectors.count() == before["chunks"]
    assert lexical_ids(home, "community mirror")


def test_another_embedder_rebuilds_the_index(home: Commons, clock: Callable[[], int]) -> None:
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


def test_lost_vectors_are_rebuilt_on_open(home: Commons, reopen: Callable[[], Commons]) -> None:
    chunks = home.search_index().counts()["chunks"]
    home.search_index().vectors.reset()  # as if the index directory were deleted
    home.close()
    c = reopen()
    assert c.search_index().vectors.count() == chunks


def test_filters_by_author_tag_and_block_list(home: Commons, alice: Identity) -> None:
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
    "text",
    ['"', 'mirror" OR "x', "NEAR(a b)", "col:value*", "-^+()", "AND OR NOT", "' ; DROP TABLE"],
)
def test_user_text_never_breaks_the_word_search(home: Commons, text: str) -> None:
    home.search_index().lexical(text, 10)  # raises on an FTS5 syntax error


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


def test_a_second_caller_waits_for_the_first_catch_up(
    home: Commons, reopen: Callable[[], Commons], clock: Callable[[], int]
) -> None:
    home.close()
    embedder = GatedEmbedder()
    c = Commons(HomePaths(home.paths.root), clock=clock, embedder=embedder)
    try:
        first = threading.Thread(target=c.search_index)
        first.start()
        assert embedder.entered.wait(timeout=60)
        got: list[SearchIndex] = []
        second = threading.Thread(target=lambda: got.append(c.search_index()))
        second.start()
        second.join(timeout=0.5)
        assert not got  # still waiting for the first caller's catch-up
        embedder.release.set()
        first.join(timeout=60)
        second.join(timeout=60)
        assert got and got[0].counts()["pending"] == 0
    finally:
        embedder.release.set()
        c.close()
