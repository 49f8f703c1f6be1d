"""Benchmark: answer quality and latency on SciFact dev claims, plus questions it cannot answer.

A home is made the way a person makes one (`Commons.init`, with the seeds);
the gold evidence documents of the dev claims plus a seeded sample of other
corpus documents are written as Markdown files (title as heading, sentences
as the body) and added through the real add path (`LocalApi.add` on
`extract_file`, one batched indexing pass). Each claim is then asked through
the real ask path (`Commons.ask`), and so are everyday questions that nothing
in the home answers. Prints JSON:

- doc@1: the first citation is a gold evidence document of the claim;
- rationale@1: the answer's first sentence is a gold rationale sentence of the
  gold document it cites (normalised token F1 >= 0.6);
- rationale@any: some sentence of the answer is one;
- abstention on the claims (should be low) and on the unanswerable questions
  (should be high), answer latency p50/p95 (warm: the index is open).

    python bench/answers.py --data ../shared/eval/scifact [--home DIR] [--claims N]

With --home DIR the built home is kept and reused (embedding ~1,300 documents
with the real model takes minutes on two cores). The evaluation data is read
from --data at run time; nothing of it is kept in the repository.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from commons.answers.extractive import Answer  # noqa: E402
from commons.api import LocalApi  # noqa: E402
from commons.ingest import extract_file  # noqa: E402
from commons.search.embedding import load_embedder  # noqa: E402
from commons.seeds import SEED_CREATED_AT, bundle_lines  # noqa: E402
from commons.service import Commons  # noqa: E402
from commons.storage.home import HomePaths  # noqa: E402

# The bench's clock: just after the seed documents were signed, or Commons.init
# would refuse them as dated in the future and the home would have no seeds.
CREATED_AT = SEED_CREATED_AT + 3600
MAPPING = "bench-answers-docs.json"  # document id -> corpus id, kept beside a reused home
F1_MATCH = 0.6

# Everyday questions that neither the seeds nor a biomedical abstract answers.
UNANSWERABLE = [
    "how long should I boil an egg for a soft yolk?",
    "what is the best way to fold a fitted sheet?",
    "how do I change a flat tyre on a bicycle?",
    "when should I plant tulip bulbs?",
    "how do I remove red wine from a carpet?",
    "what time does the post office open on Saturday?",
    "how many players are on a football team?",
    "how do I tune a guitar to drop D?",
    "what is the capital of Australia?",
    "how do I make sourdough starter?",
    "how often should I water a cactus?",
    "who won the 1998 World Cup?",
    "how do I knit a scarf for beginners?",
    "what is the boiling point of mercury?",
    "how do I unclog a kitchen sink?",
    "what is a good name for a golden retriever puppy?",
    "how do I sharpen a kitchen knife with a whetstone?",
    "how far is the moon from the earth?",
    "how do I paint a room without streaks?",
    "what is the difference between baking soda and baking powder?",
    "how do I train a cat to use a scratching post?",
    "what are the rules of chess castling?",
    "how do I iron a dress shirt?",
    "how much does a new car battery cost?",
    "how do I grow tomatoes on a balcony?",
    "what is the plot of Pride and Prejudice?",
    "how do I make pancakes without eggs?",
    "which way should a ceiling fan turn in winter?",
    "how do I hang a picture frame straight?",
    "what is the tallest mountain in Africa?",
    "how do I clean a cast iron pan?",
    "how long does it take to walk ten kilometres?",
    "how do I replace a light switch?",
    "what is the offside rule in football?",
    "how do I store fresh basil?",
    "how do I write a cover letter for a job?",
    "what year did the Berlin Wall fall?",
    "how do I play a C major chord on the piano?",
    "how do I get rid of fruit flies in the kitchen?",
    "what is the exchange rate between euros and dollars?",
    "how do I wash a wool sweater?",
    "how do I start a compost heap in the garden?",
    "what is the speed limit on a motorway?",
    "how do I patch a hole in drywall?",
    "what should I pack for a weekend camping trip?",
    "how do I make a paper aeroplane that flies far?",
    "who painted the Mona Lisa?",
    "how do I descale a kettle?",
    "what is the best time of year to visit Iceland?",
    "how do I reset my wifi router?",
]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def token_f1(a: str, b: str) -> float:
    ta, tb = tokens(a), tokens(b)
    common = sum((Counter(ta) & Counter(tb)).values())
    if not common:
        return 0.0
    precision, recall = common / len(ta), common / len(tb)
    return 2 * precision * recall / (precision + recall)


_SENTENCE = re.compile(r"(.+?)((?:\s*\[\d+\])+)(?=\s|$)", re.S)


def cited_sentences(answer: Answer) -> list[tuple[str, list[int]]]:
    """The answer's sentences, each with the citation numbers that follow it."""
    out = []
    for match in _SENTENCE.finditer(answer.text):
        numbers = [int(n) for n in re.findall(r"\d+", match.group(2))]
        out.append((match.group(1).strip(), numbers))
    return out


def markdown(item: dict[str, Any]) -> str:
    title = " ".join(item["title"].split()) or str(item["id"])
    body = " ".join(" ".join(s.split()) for s in item["sentences"])
    return f"# {title}\n\n{body}\n"


def build_home(root: Path, docs: list[dict[str, Any]], embedder: str) -> dict[str, Any]:
    """A home with the seeds and every document of `docs`, added as Markdown files."""
    paths = HomePaths(root)
    mapping_file = root / MAPPING
    if mapping_file.exists():
        return {"reused": True}
    start = time.perf_counter()
    with Commons.init(
        paths, clock=lambda: CREATED_AT, name="bench", embedder=load_embedder(embedder)
    ) as commons, tempfile.TemporaryDirectory(prefix="commons-md-") as tmp:
        commons.search_index()  # the seeds
        api = LocalApi(commons)
        mapping: dict[str, str] = {}
        with api.deferred_indexing():
            for item in docs:
                path = Path(tmp) / f"{item['id']}.md"
                path.write_text(markdown(item), encoding="utf-8")
                added = api.add(
                    extract_file(path), title=None, tags=[], licence="CC-BY-NC-2.0",
                    replaces=None,
                )
                mapping[added["id"]] = str(item["id"])
        counts = commons.search_index().counts()
    mapping_file.write_text(json.dumps(mapping), encoding="utf-8")
    return {"reused": False, "build_s": round(time.perf_counter() - start, 1), **counts}


@dataclass(frozen=True)
class Judged:
    """How one answer to a claim fares against the claim's gold evidence."""

    doc1: bool  # the first citation is a gold evidence document
    rationale1: bool  # the first sentence is a gold rationale sentence of a gold document
    rationale_any: bool  # some sentence is one


def judge(
    answer: Answer, evidence: dict[str, Any], corpus: dict[str, Any], mapping: dict[str, str]
) -> Judged:
    cited = [mapping.get(c.id) for c in answer.citations]

    def is_rationale(sentence: str, numbers: list[int]) -> bool:
        for n in numbers:
            doc = cited[n - 1] if 0 < n <= len(cited) else None
            if doc in evidence:
                gold = [corpus[doc]["sentences"][i] for i in evidence[doc]["sentences"]]
                if any(token_f1(sentence, g) >= F1_MATCH for g in gold):
                    return True
        return False

    sentences = cited_sentences(answer)
    return Judged(
        doc1=bool(cited) and cited[0] in evidence,
        rationale1=bool(sentences) and is_rationale(*sentences[0]),
        rationale_any=any(is_rationale(s, n) for s, n in sentences),
    )


def scores(judged: list[Judged | None]) -> dict[str, Any]:
    """The shares of answers that hit, over claims (an abstention is a miss)."""
    n = len(judged) or 1
    answered = [j for j in judged if j is not None]
    return {
        "claims": len(judged),
        "doc@1": round(sum(j.doc1 for j in answered) / n, 4),
        "rationale@1": round(sum(j.rationale1 for j in answered) / n, 4),
        "rationale@any": round(sum(j.rationale_any for j in answered) / n, 4),
        "claims_abstained": round((len(judged) - len(answered)) / n, 4),
    }


def ensure_seeds(commons: Commons) -> int:
    """Add the seed documents to a home built without them (by an older version of this
    script, whose clock was before the seeds' dates). Returns how many were added."""
    if commons.store.query("SELECT 1 FROM objects WHERE origin = 'seed' LIMIT 1"):
        return 0
    report = commons.import_lines(bundle_lines(), origin="seed")
    if report.refused_count:
        raise SystemExit(f"the seeds were refused: {report.refused}")
    commons.search_index()  # their vectors too
    return report.accepted


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    data = Path(args.data)
    corpus = {str(item["id"]): item for item in read_jsonl(data / "corpus.jsonl")}
    claims = read_jsonl(data / "dev-rationales.jsonl")
    gold_ids = sorted({d for c in claims for d in c["evidence"]})
    others = sorted(set(corpus) - set(gold_ids), key=int)
    sample = random.Random(args.seed).sample(others, args.others)
    docs = [corpus[d] for d in gold_ids + sample]

    root = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="commons-answers-"))
    build = build_home(root, docs, args.embedder)
    mapping: dict[str, str] = json.loads((root / MAPPING).read_text(encoding="utf-8"))
    if args.claims:
        claims = claims[: args.claims]

    with Commons(HomePaths(root), clock=lambda: CREATED_AT,
                 embedder=load_embedder(args.embedder)) as commons:
        build["seeds_added"] = ensure_seeds(commons)
        commons.ask("how do I add a file?")  # warm: index open, model loaded
        judged: list[Judged | None] = []  # None: abstained
        latencies: list[float] = []
        misses: list[dict[str, Any]] = []
        for claim in claims:
            start = time.perf_counter()
            answer = commons.ask(claim["claim"])
            latencies.append(time.perf_counter() - start)
            found = None if answer.abstained else judge(
                answer, claim["evidence"], corpus, mapping)
            judged.append(found)
            if found is not None and not found.rationale1 and len(misses) < args.show_misses:
                misses.append({"claim": claim["claim"], "answer": answer.text[:400]})
        unanswered = []
        for question in UNANSWERABLE:
            start = time.perf_counter()
            answer = commons.ask(question)
            latencies.append(time.perf_counter() - start)
            if not answer.abstained:
                unanswered.append({"question": question, "answer": answer.text[:200]})
    half = (len(judged) + 1) // 2
    result: dict[str, Any] = {
        "documents": len(docs),
        "embedder": args.embedder,
        **scores(judged),
        # tuned on the first half of the claims; the second half checks it
        "first_half": scores(judged[:half]),
        "second_half": scores(judged[half:]),
        "unanswerable": len(UNANSWERABLE),
        "unanswerable_abstained": len(UNANSWERABLE) - len(unanswered),
        "latency_ms": {
            "p50": round(1000 * statistics.median(latencies), 1),
            "p95": round(1000 * percentile(latencies, 0.95), 1),
        },
        "build": build,
    }
    if args.show_misses:
        result["answered_unanswerable"] = unanswered
        result["rationale_misses"] = misses
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/eval/scifact",
                        help="directory with corpus.jsonl and dev-rationales.jsonl")
    parser.add_argument("--home", help="keep (or reuse) the built home here")
    parser.add_argument("--claims", type=int, help="only the first N claims")
    parser.add_argument("--others", type=int, default=800, help="non-gold documents added")
    parser.add_argument("--seed", type=int, default=10, help="seed of the non-gold sample")
    parser.add_argument("--embedder", default="minilm", help="minilm (default) or fake")
    parser.add_argument("--show-misses", type=int, default=0,
                        help="list up to N rationale misses and answered unanswerables")
    args = parser.parse_args()
    print(json.dumps(evaluate(args), indent=2))


if __name__ == "__main__":
    main()
