"""Answers written by a language model, checked before anyone reads them.

A generator (an LLM) sees the best few relevant passages, numbered, and must
cite them. Its text is judged first (`commons.answers.guard`: not empty, not
its instructions, not a loop, mostly words of its passages); a text that
fails is set aside, and the extractive answer is shown with a line saying so.
Its citation numbers are checked against the passages it was given, and a
number that points at nothing is removed, never shown.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from commons.answers.extractive import (
    Answer,
    Citation,
    ExtractiveAnswerer,
    SetAside,
    Source,
)
from commons.search.embedding import Embedder

log = logging.getLogger(__name__)


class Generator(Protocol):
    """Writes an answer from numbered passages (an LLM behind some API)."""

    @property
    def name(self) -> str: ...

    def generate(self, question: str, sources: Sequence[Source]) -> str: ...


CITATION_MARK = re.compile(r"\s*\[(\s*\d+(?:\s*(?:,|;|-|–|and)\s*\d+)*\s*)\]")
_NUM_RANGE = re.compile(r"(\d+)\s*(?:-|–)\s*(\d+)|(\d+)")


def citation_numbers(inside: str) -> list[int]:
    out: list[int] = []
    for match in _NUM_RANGE.finditer(inside):
        if match.group(3):
            out.append(int(match.group(3)))
        else:
            low, high = int(match.group(1)), int(match.group(2))
            if 0 < high - low < 20:
                out.extend(range(low, high + 1))
            else:
                out.extend([low, high])
    return out


def renumber_citations(text: str, given: int) -> tuple[str, list[int]]:
    """Keep only citations of passages 1..given, renumbered in order of first use.

    Returns the new text and, for each new number n, the old passage number
    at position n-1. A marker that cites only passages that do not exist is
    dropped entirely.
    """
    order: list[int] = []

    def replace(match: re.Match[str]) -> str:
        valid = [n for n in citation_numbers(match.group(1)) if 1 <= n <= given]
        if not valid:
            return ""
        new = []
        for n in valid:
            if n not in order:
                order.append(n)
            new.append(order.index(n) + 1)
        unique = list(dict.fromkeys(new))
        return " " + "".join(f"[{n}]" for n in unique)

    out = CITATION_MARK.sub(replace, text)
    out = re.sub(r"[ \t]+([.,;:!?])", r"\1", out)
    return out.strip(), order


class NotAnAnswer(Exception):
    """A generator's text that is not shown as an answer; the reason is the message."""


def generated_answer(
    question: str, sources: Sequence[Source], generator: Generator
) -> Answer:
    """Let a generator write the answer; judge its text and check every citation it
    makes. Raises NotAnAnswer when the text is not to be shown."""
    from commons.answers.guard import citations_checked, reason_to_set_aside, tidy
    from commons.answers.prompt import instructions, trimmed

    text = tidy(generator.generate(question, sources))
    passages = [trimmed(s.text) for s in sources]
    reason = reason_to_set_aside(text, question, passages, instructions())
    if reason:
        raise NotAnAnswer(reason)
    text = citations_checked(text, [s.text for s in sources])
    text, order = renumber_citations(text, len(sources))
    if order:
        citations = tuple(
            Citation.of(n, sources[old - 1], sources[old - 1].score)
            for n, old in enumerate(order, start=1)
        )
    else:
        # The model cited nothing: still show what it was given, numbered as
        # sources, so the reader can check. Its text holds no numbers to clash.
        citations = tuple(Citation.of(n, s, s.score) for n, s in enumerate(sources, start=1))
    return Answer(text, citations, False, generator.name)


def answer_question(
    question: str,
    sources: Sequence[Source],
    embedder: Embedder,
    *,
    generator: Generator | None = None,
    vector: Sequence[float] | None = None,
) -> Answer:
    """The extractive answer, or a generator's answer from the best relevant passages.

    A generator is asked only when the extractive answerer would answer: do not
    invite a model to answer from noise. When its text is set aside, the
    extractive answer is the answer, and says so.
    """
    from commons.answers.prompt import MAX_PASSAGES

    extractive = ExtractiveAnswerer(embedder)
    answer = extractive.answer(question, sources, vector)
    if generator is None or answer.abstained:
        return answer
    keep, _, _ = extractive.relevant(question, sources, vector)
    given = [sources[i] for i in sorted(keep)][:MAX_PASSAGES]  # sources come best first
    try:
        return generated_answer(question, given, generator)
    except NotAnAnswer as exc:
        log.info("the answer of %s was set aside: %s", generator.name, exc)
        return replace(answer, set_aside=SetAside(generator.name, str(exc)))
