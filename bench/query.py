"""Benchmark: retrieval latency (p50, p95) at 10k and 100k passages; query embedding apart.

Passages are synthetic (Zipf-distributed pseudo-words, so common words have
long posting lists as in real text) and their vectors are precomputed random
unit vectors: embedding 100k passages with the real model would take hours on
two cores, and search cost does not depend on what the vectors mean. The
documents are still signed and stored, and indexed by the real SearchIndex
(chunking, Chroma HNSW, FTS5). Query embedding is timed with the real model,
separately, because it is the same at any index size.

    python bench/query.py [--sizes 10000 100000] [--queries 200] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from commons.model.identity import Identity  # noqa: E402
from commons.model.objects import Document, sign  # noqa: E402
from commons.search.embedding import load_embedder  # noqa: E402
from commons.search.retrieval import DEPTH, Retriever  # noqa: E402
from commons.service import Commons  # noqa: E402
from commons.storage.home import HomePaths, create_identity  # noqa: E402
from commons.storage.store import ObjectStore  # noqa: E402

DIMENSION = 384
PASSAGES_PER_DOCUMENT = 20
STOPWORD_RANKS = 100
CREATED_AT = 1_700_000_000
QUESTIONS = [
    "how do I run a community mirror?",
    "what happens when an author retracts a document?",
    "how much chlorine do I need to treat twenty litres of well water?",
    "which crops grow well in dry sandy soil?",
    "how do peers find each other without a central server?",
    "can I use the commons without any network connection?",
    "what are the risks of centralised AI?",
    "how do I back up my identity key?",
    "why are documents signed?",
    "how long should a slow sand filter run before the water is safe to drink?",
]


class PrecomputedEmbedder:
    """Random unit vectors from a seeded generator: the index's work without the model's."""

    name = "minilm-l6-v2"  # same shape as the real one, so the index is built the same way
    dimension = DIMENSION

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def embed_batch(self, texts: list[str]) -> Any:
        v = self.rng.standard_normal((len(texts), DIMENSION)).astype("float32")
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def vocabulary(rng: random.Random, size: int) -> list[str]:
    syllables = [c + v for c in "bdfgklmnprstvz" for v in ("a", "e", "i", "o", "u", "ai", "ou")]
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words)


class TextMaker:
    def __init__(self, rng: random.Random, words: list[str]) -> None:
        self.rng = rng
        self.words = words
        weights = [1 / (rank + 1) for rank in range(len(words))]  # Zipf, s = 1
        total = sum(weights)
        self.cumulative = np.cumsum([w / total for w in weights])
        self.stopwords = set(words[:STOPWORD_RANKS])

    def sample(self, n: int) -> list[str]:
        picks = np.searchsorted(self.cumulative, [self.rng.random() for _ in range(n)])
        return [self.words[min(int(i), len(self.words) - 1)] for i in picks]

    def query(self, n: int) -> str:
        """Query words as a person's question leaves them after stopword removal:
        Zipf-distributed, but never the 100 commonest words (the stopwords of this
        synthetic language; real ones are dropped by `match_query`)."""
        words: list[str] = []
        while len(words) < n:
            words += [w for w in self.sample(n) if w not in self.stopwords]
        return " ".join(words[:n])

    def paragraph(self) -> str:
        lengths = [self.rng.randint(10, 16) for _ in range(8)]
        words = self.sample(sum(lengths))  # one draw for the paragraph: it is the slow part
        sentences = []
        for length in lengths:
            sentences.append(" ".join(words[:length]).capitalize() + ".")
            words = words[length:]
        return " ".join(sentences)[:900]


def grow(
    commons: Commons, identity: Identity, maker: TextMaker, documents: int, start: int
) -> None:
    for i in range(start, start + documents):
        body = "\n\n".join(maker.paragraph() for _ in range(PASSAGES_PER_DOCUMENT))
        doc = Document(author=identity.public_key, created_at=CREATED_AT + i,
                       title=" ".join(maker.sample(4)).capitalize(), body=body,
                       media_type="text/plain")
        commons.store.put(sign(doc, identity), now=CREATED_AT + 10**7)
    commons.search_index().sync()


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 2),
    }


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(commons: Commons, maker: TextMaker, queries: int, seed: int) -> dict[str, Any]:
    index = commons.search_index()
    retriever = Retriever(index, commons.embedder)
    rng = np.random.default_rng(seed)
    texts = [maker.query(6) for _ in range(queries)]
    vectors = rng.standard_normal((queries, DIMENSION)).astype("float32")
    vectors = [list(map(float, v / np.linalg.norm(v))) for v in vectors]
    for text, vector in list(zip(texts, vectors, strict=True))[:10]:  # warm caches
        retriever.search(text, vector=vector)
    dense = [timed(lambda v=v: index.dense(v, DEPTH)) for v in vectors]
    lexical = [timed(lambda t=t: index.lexical(t, DEPTH)) for t in texts]
    hybrid = [
        timed(lambda t=t, v=v: retriever.search(t, k=8, vector=v))
        for t, v in zip(texts, vectors, strict=True)
    ]
    return {
        "passages": index.counts()["chunks"],
        "dense": percentiles(dense),
        "lexical": percentiles(lexical),
        "hybrid_without_query_embedding": percentiles(hybrid),
    }


def query_embedding(texts: list[str]) -> dict[str, Any]:
    model = load_embedder("minilm")
    model.embed_batch(["warm up"])
    samples = [timed(lambda t=t: model.embed_batch([t])) for t in texts]
    return {"model": model.name, **percentiles(samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--home", help="build the home here (default: a temp dir)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    maker = TextMaker(rng, vocabulary(rng, 30_000))
    root = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="commons-bench-query-"))
    paths = HomePaths(root)
    identity = create_identity(paths)
    ObjectStore(paths.db).close()
    result: dict[str, Any] = {"sizes": []}
    with Commons(paths, clock=lambda: CREATED_AT, embedder=PrecomputedEmbedder(args.seed)) as c:
        c.search_index()
        documents = 0
        for size in sorted(args.sizes):
            wanted = size // PASSAGES_PER_DOCUMENT
            start = time.perf_counter()
            grow(c, identity, maker, wanted - documents, documents)
            build_s = time.perf_counter() - start
            documents = wanted
            row = measure(c, maker, args.queries, args.seed)
            row["build_s"] = round(build_s, 1)
            result["sizes"].append(row)
    result["query_embedding"] = query_embedding(QUESTIONS * 5)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
