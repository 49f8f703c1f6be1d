"""Where passage vectors live: the `VectorStore` seam, and an exact one in memory.

A vector's id is `doc:position` (both from the word index's passage rows), and
its metadata names at least the passage's `doc` and `author` (hex), which is
what deletion and the author filters use. Scores are cosine similarities,
higher is better. Two implementations behave the same (tests/test_vectors.py
runs one set of checks against both): `ChromaVectors` (commons/search/chroma.py),
the default, persistent, approximate (HNSW); and `MemoryVectors` here, exact
and gone when the process ends, for tests and throwaway homes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from commons.search.embedding import Embedder


@dataclass(frozen=True)
class VectorFilter:
    """Which passages a query may return: by an author in `authors` (if any are
    given) and by none in `blocked`. Keys in hex, as in the metadata."""

    authors: frozenset[str] = frozenset()
    blocked: frozenset[str] = frozenset()


NO_VECTOR_FILTER = VectorFilter()


class VectorStore(Protocol):
    """Passage vectors with their metadata, searchable by cosine similarity."""

    def upsert(self, ids: list[str], vectors: Any, metadatas: list[dict[str, Any]]) -> None:
        """Add passages, or replace the vector and metadata of ids already there."""
        ...

    def query(
        self, vector: Sequence[float], n: int, where: VectorFilter = NO_VECTOR_FILTER
    ) -> list[tuple[str, float]]:
        """At most n (id, cosine similarity) pairs that pass `where`, most similar first."""
        ...

    def delete_docs(self, docs: list[str]) -> None:
        """Drop every passage of these documents (hex ids)."""
        ...

    def docs(self) -> set[str]:
        """The documents (hex ids) that have at least one passage here."""
        ...

    def count(self) -> int:
        """How many passages are stored."""
        ...

    def reset(self) -> None:
        """Drop every passage; the store stays usable."""
        ...

    def close(self) -> None: ...


# What a home calls to get its vector store: (namespace of the home, embedder).
VectorFactory = Callable[[str, "Embedder"], VectorStore]


@runtime_checkable
class Preparable(Protocol):
    """A `VectorFactory` with slow set-up (imports) that can run before the home's
    index lock is taken, so that closing the home never waits for it."""

    def prepare(self) -> None: ...


def _unit_rows(vectors: Any) -> np.ndarray:
    """Vectors as float32 rows of length 1 (a zero vector stays zero, as in Chroma)."""
    matrix = np.array(vectors, dtype=np.float32, ndmin=2)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


class MemoryVectors:
    """Passage vectors in this process's memory, searched exactly (cosine by a
    numpy dot product over every row). Nothing is written to disk, so a home
    that uses it embeds its passages again each time it is opened. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._matrix = np.zeros((0, 0), dtype=np.float32)  # rows beyond len(_ids) are spare
        self._ids: list[str] = []
        self._metadatas: list[dict[str, Any]] = []
        self._rows: dict[str, int] = {}

    def upsert(self, ids: list[str], vectors: Any, metadatas: list[dict[str, Any]]) -> None:
        if not ids:
            return
        if len(set(ids)) != len(ids):
            raise ValueError("vector ids in one upsert must be unique")
        matrix = _unit_rows(vectors)
        if matrix.shape[0] != len(ids) or len(metadatas) != len(ids):
            raise ValueError("upsert needs one vector and one metadata per id")
        with self._lock:
            if not self._ids:
                self._matrix = np.zeros((max(len(ids), 64), matrix.shape[1]), dtype=np.float32)
            self._check_dimension(matrix.shape[1])
            for vid, row_vector, metadata in zip(ids, matrix, metadatas, strict=True):
                row = self._rows.get(vid)
                if row is None:
                    row = self._append(vid)
                self._matrix[row] = row_vector
                self._metadatas[row] = dict(metadata)

    def _append(self, vid: str) -> int:
        row = len(self._ids)
        if row == self._matrix.shape[0]:  # grow by doubling: appends stay cheap
            grown = np.zeros((row * 2, self._matrix.shape[1]), dtype=np.float32)
            grown[:row] = self._matrix
            self._matrix = grown
        self._ids.append(vid)
        self._metadatas.append({})
        self._rows[vid] = row
        return row

    def _check_dimension(self, dimension: int) -> None:
        if dimension != self._matrix.shape[1]:
            raise ValueError(
                f"this vector store holds vectors of dimension {self._matrix.shape[1]},"
                f" not {dimension}"
            )

    def query(
        self, vector: Sequence[float], n: int, where: VectorFilter = NO_VECTOR_FILTER
    ) -> list[tuple[str, float]]:
        if n <= 0:
            return []
        query = _unit_rows([list(vector)])[0]
        with self._lock:
            size = len(self._ids)
            if size == 0:
                return []
            self._check_dimension(query.shape[0])
            scores = self._matrix[:size] @ query
            candidates = np.arange(size)
            if where.authors or where.blocked:
                allowed = [
                    (not where.authors or m["author"] in where.authors)
                    and m["author"] not in where.blocked
                    for m in self._metadatas
                ]
                candidates = candidates[np.array(allowed, dtype=bool)]
            best = candidates[np.argsort(-scores[candidates], kind="stable")[:n]]
            return [(self._ids[i], float(scores[i])) for i in best]

    def delete_docs(self, docs: list[str]) -> None:
        drop = set(docs)
        with self._lock:
            keep = [i for i, m in enumerate(self._metadatas) if m["doc"] not in drop]
            if len(keep) == len(self._ids):
                return
            self._matrix[: len(keep)] = self._matrix[keep]
            self._ids = [self._ids[i] for i in keep]
            self._metadatas = [self._metadatas[i] for i in keep]
            self._rows = {vid: row for row, vid in enumerate(self._ids)}

    def docs(self) -> set[str]:
        with self._lock:
            return {str(m["doc"]) for m in self._metadatas}

    def count(self) -> int:
        with self._lock:
            return len(self._ids)

    def reset(self) -> None:
        with self._lock:
            self._matrix = np.zeros((0, 0), dtype=np.float32)
            self._ids = []
            self._metadatas = []
            self._rows = {}

    def close(self) -> None:
        """Nothing to release: the vectors go with the object."""


def memory_vectors(namespace: str, embedder: Embedder) -> VectorStore:
    """A `VectorFactory` for homes whose vectors live in memory (tests, throwaway homes)."""
    return MemoryVectors()
