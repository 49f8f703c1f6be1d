"""Handlers of `commons ask` and `commons reindex`, and the indexing progress bar."""

from __future__ import annotations

import argparse
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any

from commons.api import CommonsApi, LocalApi
from commons.cli import Context
from commons.cli.output import item_author, origin_label, print_json
from commons.model.errors import CommonsError
from commons.model.text import one_line
from commons.search.index_state import IndexProgress

# Below this many passages indexing takes a second or two: no bar.
BAR_MIN_CHUNKS = 100


class ProgressBar:
    """Passages embedded, rate and time left, drawn by rich on a terminal's stderr.

    Also the console that `add` prints its `added` lines through while the bar is
    shown, so the lines scroll above it instead of breaking it.
    """

    def __init__(
        self, total: int | None, *, stream: IO[str] | None = None, label: str = "indexing"
    ) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.console = Console(file=stream if stream is not None else sys.stderr)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("passages"),
            TextColumn("{task.fields[rate]:.1f}/s"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.task = self.progress.add_task(label, total=total, rate=0.0)
        self.chunks = 0
        self.documents = 0
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self.progress.start()

    def __call__(self, progress: IndexProgress) -> None:
        with self._lock:
            self.chunks += progress.chunks
            self.documents += progress.documents
            self.progress.update(self.task, completed=self.chunks, rate=self.rate())

    def rate(self) -> float:
        elapsed = time.monotonic() - self._started
        return self.chunks / elapsed if elapsed > 0 else 0.0

    def print(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        with self._lock:
            self.progress.stop()


@contextmanager
def indexing(
    api: CommonsApi, bodies: Sequence[str] | None = None
) -> Iterator[ProgressBar | None]:
    """Around adding documents (or reindexing) on a home this process owns: index in
    one batched pass at the end, with a progress bar on a terminal's stderr when the
    work is big enough to wait for (yielded, or None). Through a node, the node
    indexes; nothing to show.
    """
    if not isinstance(api, LocalApi):
        yield None
        return
    total = None
    if bodies is not None:
        from commons.search.chunking import chunk_text

        total = sum(len(chunk_text(b)) for b in bodies)
    bar = None
    if sys.stderr.isatty() and (total is None or total >= BAR_MIN_CHUNKS):
        bar = ProgressBar(total)
        api.commons.set_index_progress(bar)
    try:
        if bodies is None:  # a rebuild indexes everything itself: nothing to defer
            yield bar
        else:
            with api.deferred_indexing():
                yield bar
    finally:
        if bar is not None:
            api.commons.set_index_progress(None)
            bar.close()


def _opening(passage: str, width: int = 72) -> str:
    """The passage's first words, so two passages of one document can be told apart."""
    text = one_line(passage)
    return text if len(text) <= width else text[: width - 1].rsplit(" ", 1)[0] + "…"


def format_answer(result: dict[str, Any], width: int = 88) -> str:
    # Never break inside a URL, a command or a key.
    lines = textwrap.wrap(
        result["answer"], width, break_long_words=False, break_on_hyphens=False
    ) or [""]
    if result["abstained"] or not result["citations"]:
        return "\n".join(lines)
    set_aside = result.get("set_aside")
    if set_aside:
        lines += ["", *textwrap.wrap(
            f"The language model {set_aside['model']} also answered, but its answer was set"
            f" aside: {set_aside['reason']}. The answer above is quoted from the sources.",
            width)]
    if result.get("model"):
        lines += ["", f"Written by the language model {result['model']} from these sources;"
                  " check them."]
    lines += ["", "Sources:"]
    for c in result["citations"]:
        page = f", p. {c['page']}" if c.get("page") else ""
        lines.append(f"[{c['n']}] {c['title']}{page} — {item_author(c)}")
        # An answer quotes only documents whose signature held just now; a node of an
        # older version does not say, and then neither does this.
        signature = "signature verified" if c.get("verified") else "signature not checked"
        lines.append(f"    {c['id'][:16]}  from {origin_label(c['origin'])}  ({signature})")
        lines.append(f"    “{_opening(c['passage'])}”")
    return "\n".join(lines)


def ask(args: argparse.Namespace, ctx: Context) -> int:
    question = " ".join(args.question)
    gguf_flag = args.gguf
    if args.local_model:
        if args.gguf or args.llm:
            raise CommonsError("--local-model is a model of its own; give it without --gguf"
                               " or --llm")
        from commons.answers.generators import bundled_gguf

        gguf_flag = str(bundled_gguf())
    url, model, gguf = ctx.settings.llm.choose(args.llm, args.model, gguf_flag)
    with ctx.open_api() as api:
        result = api.ask(
            question=question,
            k=args.k,
            authors=list(args.authors),
            tags=list(args.tags),
            llm=url,
            model=model,
            gguf=gguf,
            llm_key=ctx.settings.llm.key,
        )
    if args.json:
        print_json(result)
    else:
        print(format_answer(result))
        note = (result.get("index") or {}).get("note")
        if note:
            print(f"\n({note})")
    return 0


def reindex(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.open_api() as api, indexing(api):
        result = api.reindex()
    print(
        f"indexed {result['documents']} documents as {result['chunks']} passages"
        f" (vectors and words)"
    )
    return 0
