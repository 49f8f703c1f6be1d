"""Hybrid retrieval: dense and lexical rankings fused by reciprocal rank fusion.

Both rankings are over passages; they are turned into rankings of documents
(a document ranks where its best passage ranks), so a long document with many
matching passages does not crowd out the others, and then fused:
score(d) = sum over rankings of weight / (k + rank(d)). RRF needs no score
calibration between cosine similarity and BM25, which live on unrelated scales.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from commons.search.embedding import Embedder
from commons.search.indexer import SearchIndex
from commons.search.lexical import NO_FILTERS, ChunkRow, Filters, Scored

# Tuned on the SciFact dev split (docs/benchmarks.md): 10 to 60 all land within
# 0.01 nDCG@10 of each other; 20 was a little ahead of the paper's usual 60.
RRF_K = 20
# Candidates taken from each ranking before fusion. Deeper lists let a passage
# that one method ranks 40th still be rescued by the other.
DEPTH = 100


@dataclass(frozen=True)
class Hit:
    """A document found for a query, with its matching passages, best first."""

    doc: bytes
    score: float  # fused RRF score
    passages: tuple[ChunkRow, ...]
    passage_scores: tuple[float, ...]  # fused score of each passage on its own
    dense_rank: int | None  # 1-based rank of the document in each ranking
    lexical_rank: int | None
    similarity: float | None  # cosine similarity of the best dense passage


def doc_ranking(scored: Sequence[Scored], chunks: dict[int, ChunkRow]) -> list[bytes]:
    """Documents in order of their best passage."""
    seen: dict[bytes, None] = {}
    for s in scored:
        row = chunks.get(s.chunk)
        if row is not None and row.doc not in seen:
            seen[row.doc] = None
    return list(seen)


def rrf(rankings: Sequence[tuple[Sequence[bytes], float]], k: int = RRF_K) -> dict[bytes, float]:
    """Reciprocal rank fusion of (ranking, weight) pairs."""
    fused: dict[bytes, float] = {}
    for ranking, weight in rankings:
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + weight / (k + rank)
    return fused


class Retriever:
    """Finds documents and passages for a query in a SearchIndex."""

    def __init__(
        self,
        index: SearchIndex,
        embedder: Embedder,
        *,
        rrf_k: int = RRF_K,
        depth: int = DEPTH,
        dense_weight: float = 1.0,
        lexical_weight: float = 1.0,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.rrf_k = rrf_k
        self.depth = depth
        self.dense_weight = dense_weight
        self.lexical_weight = lexical_weight

    def embed_query(self, query: str) -> list[float]:
        return [float(x) for x in self.embedder.embed_batch([query])[0]]

    def search(
        self,
        query: str,
        *,
        k: int = 8,
        filters: Filters = NO_FILTERS,
        vector: Sequence[float] | None = None,
    ) -> list[Hit]:
        """The k best documents for a query, each once, with identical passages shown once."""
        vector = self.embed_query(query) if vector is None else vector
        dense = self.index.dense(vector, self.depth, filters)
        lexical = self.index.lexical(query, self.depth, filters)
        return self.fuse(dense, lexical, k=k)

    def fuse(self, dense: Sequence[Scored], lexical: Sequence[Scored], *, k: int) -> list[Hit]:
        chunks = self.index.chunks({s.chunk for s in dense} | {s.chunk for s in lexical})
        dense_docs = doc_ranking(dense, chunks)
        lexical_docs = doc_ranking(lexical, chunks)
        fused = rrf(
            [(dense_docs, self.dense_weight), (lexical_docs, self.lexical_weight)], self.rrf_k
        )
        # Passages of one document, ordered by their own fused score.
        chunk_score = rrf(
            [
                ([str(s.chunk).encode() for s in dense], self.dense_weight),
                ([str(s.chunk).encode() for s in lexical], self.lexical_weight),
            ],
            self.rrf_k,
        )
        similarity = {s.chunk: s.score for s in dense}
        by_doc: dict[bytes, list[ChunkRow]] = {}
        for cid in sorted(chunks, key=lambda c: -chunk_score.get(str(c).encode(), 0.0)):
            by_doc.setdefault(chunks[cid].doc, []).append(chunks[cid])
        dense_rank = {d: i for i, d in enumerate(dense_docs, start=1)}
        lexical_rank = {d: i for i, d in enumerate(lexical_docs, start=1)}
        hits: list[Hit] = []
        seen_text: set[bytes] = set()
        for doc in sorted(fused, key=lambda d: (-fused[d], d)):
            passages = by_doc.get(doc, [])
            if not passages:
                continue
            # The same text signed twice (two authors, or a copy) is shown once.
            digest = hashlib.sha256(" ".join(passages[0].text.split()).encode()).digest()
            if digest in seen_text:
                continue
            seen_text.add(digest)
            sims = [similarity[p.id] for p in passages if p.id in similarity]
            hits.append(
                Hit(
                    doc=doc,
                    score=fused[doc],
                    passages=tuple(passages),
                    passage_scores=tuple(
                        chunk_score.get(str(p.id).encode(), 0.0) for p in passages
                    ),
                    dense_rank=dense_rank.get(doc),
                    lexical_rank=lexical_rank.get(doc),
                    similarity=max(sims) if sims else None,
                )
            )
            if len(hits) >= k:
                break
        return hits
