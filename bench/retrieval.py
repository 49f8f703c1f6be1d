"""Benchmark: retrieval quality on a BEIR-style test set (SciFact dev), dense vs lexical vs hybrid.

Every corpus line becomes a signed document (title, then its sentences as the
body) stored in a fresh home; the home's search index then indexes them the
way a starting node does (chunked, embedded with the real model, FTS5), and
each query runs against it. Prints JSON with nDCG@10 and recall@100 for each
method. The data is for evaluation only; nothing of it is kept in the repo.

    python bench/retrieval.py --corpus ../shared/eval/scifact/corpus.jsonl \\
        --queries ../shared/eval/scifact/dev-queries.jsonl \\
        --qrels ../shared/eval/scifact/dev-qrels.tsv [--home DIR] [--limit N]

With --home DIR the indexed home is kept (and reused by the next run with the
same DIR), so retrieval parameters can be tuned without embedding again.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from commons.model.objects import Document, normalise_text, sign  # noqa: E402
from commons.search.embedding import load_embedder  # noqa: E402
from commons.search.indexer import SearchIndex  # noqa: E402
from commons.search.lexical import Scored  # noqa: E402
from commons.search.retrieval import DEPTH, RRF_K, Retriever, doc_ranking  # noqa: E402
from commons.service import Commons  # noqa: E402
from commons.storage.home import HomePaths, create_identity  # noqa: E402
from commons.storage.store import ObjectStore  # noqa: E402

CREATED_AT = 1_700_000_000


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3 or not parts[2].lstrip("-").isdigit():
                continue  # the header
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return qrels


def ndcg_at(ranking: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum(
        (2 ** relevant.get(doc, 0) - 1) / math.log2(i + 2) for i, doc in enumerate(ranking[:k])
    )
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum((2**rel - 1) / math.log2(i + 2) for i, rel in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranking: Sequence[str], relevant: dict[str, int], k: int = 100) -> float:
    wanted = {d for d, rel in relevant.items() if rel > 0}
    return len(wanted & set(ranking[:k])) / len(wanted) if wanted else 0.0


def build_home(root: Path, corpus: list[dict[str, Any]], embedder_name: str) -> dict[str, Any]:
    """Sign and store every corpus document in a new home, then index them."""
    paths = HomePaths(root)
    timings: dict[str, Any] = {}
    if not paths.exists():
        identity = create_identity(paths)
        store = ObjectStore(paths.db)
        start = time.perf_counter()
        for i, item in enumerate(corpus):
            title = normalise_text(" ".join(item["title"].split()))[:300] or str(item["id"])
            body = normalise_text(" ".join(s.strip() for s in item["sentences"])) or title
            doc = Document(
                author=identity.public_key,
                created_at=CREATED_AT + i,
                title=title,
                body=body,
                media_type="text/plain",
                tags=(),
                licence="CC-BY-NC-2.0",
            )
            store.put(sign(doc, identity), now=CREATED_AT + len(corpus), origin="bench")
        store.close()
        timings["sign_and_store_s"] = round(time.perf_counter() - start, 2)
    with Commons(paths, clock=lambda: CREATED_AT, embedder=load_embedder(embedder_name)) as c:
        start = time.perf_counter()
        c.search_index()  # catches up: chunks, embeds and indexes every stored document
        timings["index_s"] = round(time.perf_counter() - start, 2)
        timings.update(c.search_index().counts())
    return timings


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    corpus = read_jsonl(Path(args.corpus))
    if args.limit:
        corpus = corpus[: args.limit]
    queries = {q["id"]: q["text"] for q in read_jsonl(Path(args.queries))}
    qrels = read_qrels(Path(args.qrels))
    known = {str(item["id"]) for item in corpus}
    qrels = {q: {d: r for d, r in rel.items() if d in known} for q, rel in qrels.items()}
    qrels = {q: rel for q, rel in qrels.items() if rel and q in queries}

    root = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="commons-bench-"))
    build = build_home(root, corpus, args.embedder)
    paths = HomePaths(root)
    embedder = load_embedder(args.embedder)
    with Commons(paths, clock=lambda: CREATED_AT, embedder=embedder) as c:
        index: SearchIndex = c.search_index()
        # document id -> corpus id, through the titles and bodies we signed
        corpus_id = {
            oid: str(corpus[ts - CREATED_AT]["id"]) for ts, oid in c.store.items(kind="document")
        }
        retriever = Retriever(
            index,
            embedder,
            rrf_k=args.rrf_k,
            depth=args.depth,
            dense_weight=args.dense_weight,
            lexical_weight=args.lexical_weight,
        )
        ids = list(qrels)
        start = time.perf_counter()
        vectors = embedder.embed_batch([queries[q] for q in ids])
        embed_s = time.perf_counter() - start
        scores: dict[str, dict[str, list[float]]] = {
            m: {"ndcg@10": [], "recall@100": []} for m in ("dense", "lexical", "hybrid")
        }
        start = time.perf_counter()
        for qid, vector in zip(ids, vectors, strict=True):
            text = queries[qid]
            dense: list[Scored] = index.dense(list(map(float, vector)), args.depth)
            lexical: list[Scored] = index.lexical(text, args.depth)
            chunks = index.chunks({s.chunk for s in dense} | {s.chunk for s in lexical})
            rankings = {
                "dense": doc_ranking(dense, chunks),
                "lexical": doc_ranking(lexical, chunks),
                "hybrid": [h.doc for h in retriever.fuse(dense, lexical, k=100)],
            }
            for method, docs in rankings.items():
                ranking = [corpus_id[d] for d in docs]
                scores[method]["ndcg@10"].append(ndcg_at(ranking, qrels[qid]))
                scores[method]["recall@100"].append(recall_at(ranking, qrels[qid]))
        search_s = time.perf_counter() - start
    result: dict[str, Any] = {
        "corpus_documents": len(corpus),
        "queries": len(ids),
        "embedder": embedder.name,
        "params": {
            "rrf_k": args.rrf_k,
            "depth": args.depth,
            "dense_weight": args.dense_weight,
            "lexical_weight": args.lexical_weight,
        },
    }
    for method, values in scores.items():
        result[method] = {name: round(sum(v) / len(v), 4) for name, v in values.items()}
    result["build"] = build
    result["query_embedding_s"] = round(embed_s, 2)
    result["search_s"] = round(search_s, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--qrels", required=True)
    parser.add_argument("--home", help="keep (or reuse) the indexed home here")
    parser.add_argument("--limit", type=int, help="only the first N corpus documents")
    parser.add_argument("--embedder", default="minilm", help="minilm (default) or fake")
    parser.add_argument("--rrf-k", type=int, default=RRF_K)
    parser.add_argument(
        "--depth", type=int, default=max(DEPTH, 300), help="passages from each method"
    )
    parser.add_argument("--dense-weight", type=float, default=1.0)
    parser.add_argument("--lexical-weight", type=float, default=1.0)
    args = parser.parse_args()
    print(json.dumps(evaluate(args), indent=2))


if __name__ == "__main__":
    main()
