"""The two vector stores behave the same: every check here runs on Chroma and in memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from commons.search.chroma import ChromaVectors, chroma_where, open_chroma
from commons.search.vectors import NO_VECTOR_FILTER, MemoryVectors, VectorFilter, VectorStore

A, B, C = "aa" * 32, "bb" * 32, "cc" * 32  # authors (hex keys)


def open_store(kind: str, tmp_path: Path) -> VectorStore:
    if kind == "memory":
        return MemoryVectors()
    return ChromaVectors(open_chroma(str(tmp_path / "chroma"), None), "commons-test-vectors")


@pytest.fixture(params=["memory", "chroma"])
def vectors(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    store = open_store(request.param, tmp_path)
    yield store
    store.close()


def meta(doc: str, author: str, position: int = 0) -> dict[str, Any]:
    return {"doc": doc, "author": author, "position": position, "page": 0, "start": 0, "end": 1}


def unit(*xs: float) -> list[float]:
    v = np.array(xs, dtype=float)
    return list(v / np.linalg.norm(v))


def add(store: VectorStore, rows: list[tuple[str, list[float], str]]) -> None:
    """Passages (doc:position id, vector, author)."""
    store.upsert(
        [vid for vid, _, _ in rows],
        [v for _, v, _ in rows],
        [meta(vid.split(":")[0], author, int(vid.split(":")[1])) for vid, _, author in rows],
    )


def ids(hits: list[tuple[str, float]]) -> list[str]:
    return [vid for vid, _ in hits]


def test_an_empty_store_finds_nothing(vectors: VectorStore) -> None:
    assert vectors.count() == 0 and vectors.docs() == set()
    assert vectors.query(unit(1, 0, 0), 5) == []


def test_nearest_first_with_cosine_similarity(vectors: VectorStore) -> None:
    add(vectors, [("d1:0", unit(1, 0, 0), A), ("d2:0", unit(1, 1, 0), A),
                  ("d3:0", unit(0, 1, 0), A), ("d4:0", unit(-1, 0, 0), A)])
    hits = vectors.query(unit(1, 0, 0), 10)
    assert ids(hits) == ["d1:0", "d2:0", "d3:0", "d4:0"]
    assert [s for _, s in hits] == pytest.approx([1.0, 2**-0.5, 0.0, -1.0], abs=1e-5)
    assert vectors.count() == 4 and vectors.docs() == {"d1", "d2", "d3", "d4"}


def test_a_scaled_or_zero_vector_is_scored_by_cosine(vectors: VectorStore) -> None:
    add(vectors, [("d1:0", [3.0, 0.0], A), ("d2:0", [0.0, 0.0], A)])
    assert vectors.query([0.5, 0.0], 2) == [
        ("d1:0", pytest.approx(1.0, abs=1e-5)), ("d2:0", pytest.approx(0.0, abs=1e-5))
    ]


def test_n_caps_the_results(vectors: VectorStore) -> None:
    add(vectors, [(f"d{i}:0", unit(1, i / 10), A) for i in range(5)])
    assert ids(vectors.query(unit(1, 0), 2)) == ["d0:0", "d1:0"]
    assert len(vectors.query(unit(1, 0), 50)) == 5
    assert vectors.query(unit(1, 0), 0) == [] and vectors.query(unit(1, 0), -1) == []


def test_upsert_replaces_the_vector_and_metadata_of_an_id(vectors: VectorStore) -> None:
    add(vectors, [("d1:0", unit(1, 0), A), ("d2:0", unit(0, 1), A)])
    add(vectors, [("d1:0", unit(0, 1), B)])
    assert vectors.count() == 2
    assert ids(vectors.query(unit(0, 1), 1, VectorFilter(authors=frozenset({B})))) == ["d1:0"]
    assert vectors.query(unit(1, 0), 2)[0][1] == pytest.approx(0.0, abs=1e-5)


def test_delete_docs_drops_every_passage_of_those_documents_only(vectors: VectorStore) -> None:
    add(vectors, [("d1:0", unit(1, 0), A), ("d1:1", unit(1, 1), A), ("d2:0", unit(0, 1), A),
                  ("d3:0", unit(1, 2), B)])
    vectors.delete_docs(["d1", "d9"])
    assert vectors.count() == 2 and vectors.docs() == {"d2", "d3"}
    assert ids(vectors.query(unit(1, 0), 10)) == ["d3:0", "d2:0"]
    vectors.delete_docs([])
    assert vectors.count() == 2
    add(vectors, [("d1:0", unit(1, 0), A)])  # a deleted id can come back
    assert ids(vectors.query(unit(1, 0), 1)) == ["d1:0"]


def test_author_filters(vectors: VectorStore) -> None:
    add(vectors, [("d1:0", unit(1, 0), A), ("d2:0", unit(1, 0.1), B), ("d3:0", unit(1, 0.2), C)])
    q = unit(1, 0)
    assert ids(vectors.query(q, 10, VectorFilter(authors=frozenset({B, C})))) == ["d2:0", "d3:0"]
    assert ids(vectors.query(q, 10, VectorFilter(blocked=frozenset({A})))) == ["d2:0", "d3:0"]
    both = VectorFilter(authors=frozenset({A, B}), blocked=frozenset({A}))
    assert ids(vectors.query(q, 10, both)) == ["d2:0"]
    assert vectors.query(q, 10, VectorFilter(authors=frozenset({"dd" * 32}))) == []
    assert ids(vectors.query(q, 1, VectorFilter(blocked=frozenset({A})))) == ["d2:0"]


def test_reset_empties_the_store_and_keeps_it_usable(vectors: VectorStore) -> None:
    add(vectors, [("d1:0", unit(1, 0), A), ("d2:0", unit(0, 1), A)])
    vectors.reset()
    assert vectors.count() == 0 and vectors.query(unit(1, 0), 5) == []
    add(vectors, [("d3:0", unit(1, 0, 0), A)])  # another embedder's dimension
    assert ids(vectors.query(unit(1, 0, 0), 5)) == ["d3:0"] and vectors.docs() == {"d3"}


def test_both_stores_answer_the_same(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    docs = [f"{i:02x}" * 32 for i in range(20)]
    rows = [
        (f"{docs[i % 20]}:{i // 20}", unit(*rng.standard_normal(16)), (A, B, C)[i % 3])
        for i in range(80)
    ]
    queries = [unit(*rng.standard_normal(16)) for _ in range(5)]
    filters = [NO_VECTOR_FILTER, VectorFilter(authors=frozenset({A, C})),
               VectorFilter(blocked=frozenset({B}))]
    answers = []
    for kind in ("memory", "chroma"):
        store = open_store(kind, tmp_path)
        try:
            add(store, rows)
            store.delete_docs(docs[:3])
            answers.append([store.query(q, 10, f) for q in queries for f in filters])
        finally:
            store.close()
    memory, chroma = answers
    assert all(len(a) == 10 for a in memory)
    assert [ids(a) for a in memory] == [ids(a) for a in chroma]
    for m, c in zip(memory, chroma, strict=True):
        assert [s for _, s in m] == pytest.approx([s for _, s in c], abs=1e-5)


def test_chroma_where_says_the_same_as_the_filter() -> None:
    assert chroma_where(NO_VECTOR_FILTER) is None
    assert chroma_where(VectorFilter(authors=frozenset({B, A}))) == {"author": {"$in": [A, B]}}
    assert chroma_where(VectorFilter(authors=frozenset({A}), blocked=frozenset({B}))) == {
        "$and": [{"author": {"$in": [A]}}, {"author": {"$nin": [B]}}]
    }


def test_memory_refuses_mismatched_input() -> None:
    store = MemoryVectors()
    add(store, [("d1:0", unit(1, 0), A)])
    with pytest.raises(ValueError, match="dimension"):
        add(store, [("d2:0", unit(1, 0, 0), A)])
    with pytest.raises(ValueError, match="dimension"):
        store.query(unit(1, 0, 0), 1)
    with pytest.raises(ValueError, match="unique"):
        store.upsert(["d3:0", "d3:0"], [unit(1, 0)] * 2, [meta("d3", A)] * 2)
    assert store.count() == 1
