"""Benchmark: passages per second through the whole `commons add` pipeline vs the bare model.

The pipeline is what `commons add FILE...` does on a home it owns: read and
extract each file, sign and store it, then (in one batched pass) chunk, embed
with the real model, and write vectors to Chroma and words to FTS5. The
baseline embeds exactly the same passage texts with the same model and
nothing else. Their ratio is the pipeline's efficiency (goal: 0.9 or better).
The model is loaded and warmed before either clock starts.

    python bench/ingest.py --corpus ../shared/eval/scifact/corpus.jsonl [--docs 1000]

The corpus is BEIR-style JSONL ({"title", "sentences"} a line); without one,
the seed documents are used (few passages: a noisy ratio).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from commons.api import LocalApi  # noqa: E402
from commons.ingest import extract_file  # noqa: E402
from commons.search.chunking import chunk_text, embedding_text  # noqa: E402
from commons.search.embedding import load_embedder  # noqa: E402
from commons.service import Commons  # noqa: E402
from commons.storage.home import HomePaths, create_identity  # noqa: E402
from commons.storage.store import ObjectStore  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def write_files(directory: Path, corpus: Path | None, limit: int) -> list[Path]:
    """The documents as Markdown files, as a person would have them."""
    paths = []
    if corpus is None:
        for source in sorted((ROOT / "seeds").glob("*.md")):
            paths.append(directory / source.name)
            paths[-1].write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
        return paths
    with open(corpus, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= limit:
                break
            item = json.loads(line)
            title = " ".join(item["title"].split())[:300] or f"document {i}"
            body = " ".join(s.strip() for s in item["sentences"]) or title
            path = directory / f"{i:06d}.md"
            path.write_text(f"# {title}\n\n{body}\n", encoding="utf-8")
            paths.append(path)
    return paths


def run(corpus: Path | None, limit: int, embedder_name: str) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="commons-bench-ingest-"))
    (work / "files").mkdir()
    files = write_files(work / "files", corpus, limit)
    paths = HomePaths(work / "home")
    create_identity(paths)
    ObjectStore(paths.db).close()
    embedder = load_embedder(embedder_name)
    clock = lambda: int(time.time())  # noqa: E731
    with Commons(paths, clock=clock, embedder=embedder) as commons:
        api = LocalApi(commons)
        commons.search_index()  # opens Chroma (empty home: nothing to catch up)
        embedder.embed_batch(["warm up the model"] * 8)

        start, cpu = time.perf_counter(), time.process_time()
        with api.deferred_indexing():
            for path in files:
                api.add(extract_file(path), title=None, tags=[], licence="CC0", replaces=None)
        pipeline_s = time.perf_counter() - start
        pipeline_cpu_s = time.process_time() - cpu
        counts = commons.search_index().counts()

        # The bare model on the very same passage texts.
        texts = []
        for path in files:
            extracted = extract_file(path)
            texts += [embedding_text(extracted.title, c.text) for c in chunk_text(extracted.body)]
        start, cpu = time.perf_counter(), time.process_time()
        embedder.embed_batch(texts)
        model_s = time.perf_counter() - start
        model_cpu_s = time.process_time() - cpu
    chunks = counts["chunks"]
    assert chunks == len(texts), (chunks, len(texts))
    pipeline_rate = chunks / pipeline_s
    model_rate = len(texts) / model_s
    return {
        "documents": len(files),
        "passages": chunks,
        "embedder": embedder.name,
        "pipeline_s": round(pipeline_s, 2),
        "model_s": round(model_s, 2),
        "pipeline_passages_per_s": round(pipeline_rate, 1),
        "model_passages_per_s": round(model_rate, 1),
        "ratio": round(pipeline_rate / model_rate, 3),
        # CPU seconds of this process (all its threads): steadier on a shared machine.
        "pipeline_cpu_s": round(pipeline_cpu_s, 2),
        "model_cpu_s": round(model_cpu_s, 2),
        "cpu_ratio": round(model_cpu_s / pipeline_cpu_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, help="BEIR-style corpus.jsonl")
    parser.add_argument("--docs", type=int, default=1000, help="documents from the corpus")
    parser.add_argument("--embedder", default="minilm")
    args = parser.parse_args()
    print(json.dumps(run(args.corpus, args.docs, args.embedder), indent=2))


if __name__ == "__main__":
    main()
