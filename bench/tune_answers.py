"""Tuning the extractive answerer: retrieve once, replay the answerer many times.

`bench/answers.py` asks every claim through the whole ask path, which takes
minutes. The answerer's numbers only change what happens after retrieval, so
this script records, once, each question's retrieved passages and query vector
(the dev claims of SciFact, the everyday unanswerable questions and the seed
questions of the tests), then replays the real `ExtractiveAnswerer` on them
for each tuning asked for, with sentence vectors cached. Prints JSON: for each
tuning, the scores on the first half of the claims (tune on it), the second
half (check on it), the unanswerable questions that abstained and the seed
questions that got an answer.

    python bench/tune_answers.py --home /work/bench/answers-home --cache /tmp/tune \\
        [--tuning 0.40,0.30,0.12,0.08,0.3,0.4,0.1 ...] [--show N]

The home is the one `bench/answers.py --home` built (it is opened, read, and
closed; nothing is added but the seeds, if it lacks them). A tuning is the seven numbers of
`commons.answers.extractive.Tuning` in order; without --tuning the current one
is replayed.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from answers import (  # noqa: E402
    CREATED_AT,
    MAPPING,
    UNANSWERABLE,
    Judged,
    ensure_seeds,
    judge,
    read_jsonl,
    scores,
)

from commons.answers.ask import sources  # noqa: E402
from commons.answers.extractive import ExtractiveAnswerer, Source, Tuning, tuning_for  # noqa: E402
from commons.model.objects import normalise_text  # noqa: E402
from commons.search.embedding import CachedEmbedder, Embedder, load_embedder  # noqa: E402
from commons.search.retrieval import Retriever  # noqa: E402
from commons.service import Commons  # noqa: E402
from commons.storage.home import HomePaths  # noqa: E402

# The seed questions of tests/test_answer_sentences.py and a few more a newcomer asks.
SEED_QUESTIONS = [
    "how do I run a community mirror?",
    "how does replication between peers work?",
    "how do signatures protect documents?",
    "can I use the commons without a network connection?",
    "how do I add a file?",
    "what is a mirror?",
]


@dataclass(frozen=True)
class Asked:
    """A question as the answerer receives it after retrieval."""

    question: str
    vector: list[float]
    sources: list[Source]


def capture(home: Path, questions: Sequence[str], embedder: Embedder) -> list[Asked]:
    """Retrieve for every question the way `commons.answers.ask.ask` does."""
    out = []
    with Commons(HomePaths(home), clock=lambda: CREATED_AT, embedder=embedder) as commons:
        ensure_seeds(commons)
        index = commons.search_index(dense=False)
        retriever = Retriever(index, commons.embedder)
        for question in questions:
            question = normalise_text(" ".join(question.split()))
            vector = retriever.embed_query(question)
            hits = retriever.search(question, k=8, vector=vector)
            out.append(Asked(question, vector, sources(commons, hits)))
    return out


def replay(
    tuning: Tuning,
    embedder: CachedEmbedder,
    claims: list[tuple[Asked, dict[str, Any]]],
    unanswerable: list[Asked],
    seeds: list[Asked],
    corpus: dict[str, Any],
    mapping: dict[str, str],
    show: int,
) -> dict[str, Any]:
    answerer = ExtractiveAnswerer(embedder, tuning=tuning)
    judged: list[Judged | None] = []
    misses: list[dict[str, Any]] = []
    for asked, claim in claims:
        answer = answerer.answer(asked.question, asked.sources, asked.vector)
        found = None if answer.abstained else judge(answer, claim["evidence"], corpus, mapping)
        judged.append(found)
        if found is not None and not found.rationale1 and len(misses) < show:
            misses.append({"claim": asked.question, "answer": answer.text[:300]})
    answered: list[dict[str, Any]] = []
    for asked in unanswerable:
        answer = answerer.answer(asked.question, asked.sources, asked.vector)
        if not answer.abstained:
            answered.append({"question": asked.question, "answer": answer.text[:200]})
    seed_answers: dict[str, str | None] = {}
    for asked in seeds:
        answer = answerer.answer(asked.question, asked.sources, asked.vector)
        seed_answers[asked.question] = None if answer.abstained else answer.text[:300]
    half = (len(judged) + 1) // 2
    result: dict[str, Any] = {
        "tuning": dict(zip([f.name for f in fields(Tuning)], astuple(tuning), strict=True)),
        "first_half": scores(judged[:half]),
        "second_half": scores(judged[half:]),
        "unanswerable_abstained": len(unanswerable) - len(answered),
        "seeds_answered": sum(a is not None for a in seed_answers.values()),
    }
    if show:
        result.update(rationale_misses=misses, answered_unanswerable=answered,
                      seed_answers=seed_answers)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/eval/scifact")
    parser.add_argument("--home", required=True, help="a home built by bench/answers.py --home")
    parser.add_argument("--cache", required=True, help="where the retrieved passages and"
                        " sentence vectors are kept between runs")
    parser.add_argument("--tuning", action="append", default=[],
                        help="seven numbers, comma-separated (Tuning's fields in order)")
    parser.add_argument("--show", type=int, default=0, help="list up to N misses")
    args = parser.parse_args()

    data, cache = Path(args.data), Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    corpus = {str(item["id"]): item for item in read_jsonl(data / "corpus.jsonl")}
    claims = read_jsonl(data / "dev-rationales.jsonl")
    mapping = json.loads((Path(args.home) / MAPPING).read_text(encoding="utf-8"))
    embedder = load_embedder("minilm")
    asked_file = cache / "asked.pickle"
    if asked_file.exists():
        asked: list[Asked] = pickle.loads(asked_file.read_bytes())
    else:
        questions = [c["claim"] for c in claims] + UNANSWERABLE + SEED_QUESTIONS
        asked = capture(Path(args.home), questions, embedder)
        asked_file.write_bytes(pickle.dumps(asked))
    vectors_file = cache / "vectors.pickle"
    vectors = pickle.loads(vectors_file.read_bytes()) if vectors_file.exists() else {}
    cached = CachedEmbedder(embedder, size=len(vectors) + 1_000_000, known=vectors)
    n, u = len(claims), len(UNANSWERABLE)
    tunings = [Tuning(*(float(x) for x in t.split(","))) for t in args.tuning]
    results = [
        replay(t, cached, list(zip(asked[:n], claims, strict=True)), asked[n : n + u],
               asked[n + u :], corpus, mapping, args.show)
        for t in tunings or [tuning_for(embedder)]
    ]
    vectors_file.write_bytes(pickle.dumps(cached.vectors()))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
