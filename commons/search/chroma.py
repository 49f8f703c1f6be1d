"""Passage vectors in Chroma: embedded in the home's index directory, or a `chroma run` server.

The default `VectorStore` of a home. One collection per home and embedder
(`collection_name`), so a server can hold many homes, and a home that changes
embedder drops the collections of its old one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from commons.model.errors import CommonsError
from commons.search.vectors import NO_VECTOR_FILTER, VectorFactory, VectorFilter, VectorStore

if TYPE_CHECKING:
    from commons.search.embedding import Embedder

log = logging.getLogger(__name__)

DELETE_BATCH = 500  # documents per delete call


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
        self, vector: Sequence[float], n: int, where: VectorFilter = NO_VECTOR_FILTER
    ) -> list[tuple[str, float]]:
        if n <= 0:
            return []
        result = self._collection.query(
            query_embeddings=[list(map(float, vector))],
            n_results=n,
            where=chroma_where(where),
            include=["distances"],
        )
        ids = result["ids"][0] if result["ids"] else []
        distances = result["distances"][0] if result.get("distances") else []
        return [(i, 1.0 - float(d)) for i, d in zip(ids, distances, strict=False)]

    def delete_docs(self, docs: list[str]) -> None:
        for i in range(0, len(docs), DELETE_BATCH):
            self._collection.delete(where={"doc": {"$in": docs[i : i + DELETE_BATCH]}})

    def docs(self) -> set[str]:
        metadatas = self._collection.get(include=["metadatas"])["metadatas"] or []
        return {str(m["doc"]) for m in metadatas}

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


def chroma_where(where: VectorFilter) -> dict[str, Any] | None:
    """A VectorFilter in Chroma's `where` syntax (None: no filter)."""
    clauses: list[dict[str, Any]] = []
    if where.authors:
        clauses.append({"author": {"$in": sorted(where.authors)}})
    if where.blocked:
        clauses.append({"author": {"$nin": sorted(where.blocked)}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def import_chroma() -> Any:
    """chromadb, imported without the `overrides` checks (a third of its import time)."""
    from commons.search.chroma_import import without_override_checks

    with without_override_checks():
        return _import_chroma()


def _import_chroma() -> Any:
    try:
        import chromadb
        import chromadb.config
    except ImportError as exc:  # pragma: no cover - chromadb is a dependency
        raise CommonsError("chromadb is not installed; run `make install`") from exc
    return chromadb


def open_chroma(path: str, url: str | None) -> Any:
    """An embedded Chroma at `path`, or a client of the `chroma run` server at `url`."""
    from commons.search.chroma_import import without_override_checks

    with without_override_checks():  # the client imports more of chromadb as it opens
        return _open_chroma(_import_chroma(), path, url)


def _open_chroma(chromadb: Any, path: str, url: str | None) -> Any:
    from chromadb.config import Settings

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


_COLLECTION_CHARS = re.compile(r"[^a-zA-Z0-9._-]+")


def collection_name(namespace: str, embedder: Embedder) -> str:
    """Chroma collection of one home and one embedder (a server may hold many homes)."""
    name = f"commons-{namespace}-{embedder.name}-{embedder.dimension}"
    return _COLLECTION_CHARS.sub("-", name)[:500]


@dataclass(frozen=True)
class ChromaFactory:
    """The `VectorFactory` of a home's default store: Chroma embedded at `path` (the
    home's index directory), or the server at `url`. Opening it drops the home's
    collections of other embedders."""

    path: str
    url: str | None = None

    def prepare(self) -> None:
        """Import chromadb (seconds on a small machine), before anything is opened."""
        import_chroma()

    def __call__(self, namespace: str, embedder: Embedder) -> VectorStore:
        vectors = ChromaVectors(open_chroma(self.path, self.url),
                                collection_name(namespace, embedder))
        vectors.drop_others(f"commons-{namespace}-")
        return vectors


def chroma_vectors(path: str, url: str | None = None) -> VectorFactory:
    """Chroma embedded at `path`, or the server at `url` (see `ChromaFactory`)."""
    return ChromaFactory(path, url)
