"""Answers built from retrieved passages, every sentence cited.

The default answerer is extractive and needs no language model: it picks the
sentences of the top passages that best answer the question (relevance to the
question minus redundancy with what is already picked: maximal marginal
relevance), keeps them in reading order, and cites each. What a reader sees
is what an author wrote and signed.

Below a relevance threshold it abstains: quoting the least bad sentence of an
unrelated document would look like an answer and be noise.

A generator (an LLM) may write the answer instead; it sees numbered passages
and must cite them. Its citation numbers are checked against the passages it
was given, and a number that points at nothing is removed, never shown.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from commons.model.text import content_words
from commons.search.chunking import sentence_spans
from commons.search.embedding import Embedder

log = logging.getLogger(__name__)

ABSTAIN_TEXT = (
    "Nothing in this commons answers that question. Try other words, fewer filters,"
    " or sync with a peer that may know more."
)
# Cosine similarity between question and best sentence or passage below which
# we abstain, per embedder. MiniLM puts unrelated English text at 0.0-0.25 and
# a passage that answers a question at 0.45 and above (measured on the seeds).
THRESHOLDS = {"minilm-l6-v2": 0.35, "hash": 0.3}
DEFAULT_THRESHOLD = 0.3
MIN_SENTENCE_CHARS = 25
CONTEXT_WEIGHT = 0.4  # share of a sentence's relevance that comes from its passage
_MARKUP_START = re.compile(r"^\s*(?:#{1,6}\s+|[-*+]\s+|\d{1,3}[.)]\s+|>\s*)+")
_EMPHASIS = re.compile(r"(\*\*|__)(.+?)\1")


@dataclass(frozen=True)
class Source:
    """A retrieved passage with where it came from, as the answerers see it."""

    doc: bytes
    title: str
    author: bytes
    author_name: str | None
    origin: str
    text: str  # the passage: body[start:end]
    start: int
    end: int
    page: int | None
    score: float  # the retrieval (fused) score


@dataclass(frozen=True)
class Citation:
    n: int
    id: str
    title: str
    author: str
    author_name: str | None
    origin: str
    passage: str
    score: float
    page: int | None
    start: int
    end: int

    @classmethod
    def of(cls, n: int, source: Source, score: float) -> Citation:
        return cls(
            n=n,
            id=source.doc.hex(),
            title=source.title,
            author=source.author.hex(),
            author_name=source.author_name,
            origin=source.origin,
            passage=source.text,
            score=round(float(score), 4),
            page=source.page,
            start=source.start,
            end=source.end,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Answer:
    text: str
    citations: tuple[Citation, ...] = ()
    abstained: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "citations": [c.to_json() for c in self.citations],
            "abstained": self.abstained,
        }


def abstain() -> Answer:
    return Answer(ABSTAIN_TEXT, (), True)


def threshold_for(embedder: Embedder) -> float:
    return THRESHOLDS.get(embedder.name, DEFAULT_THRESHOLD)


def clean_sentence(text: str) -> str:
    """A sentence as shown in an answer: one line, without list or heading markup."""
    text = " ".join(text.split())
    text = _MARKUP_START.sub("", text)
    return _EMPHASIS.sub(r"\2", text).replace("**", "")


@dataclass(frozen=True)
class _Sentence:
    source: int  # index into the sources
    start: int  # offset in the passage
    text: str


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return float(sum(x * y for x, y in zip(a, b, strict=True)))


class Relevance:
    """How well sentences and passages match a question (cosine of unit vectors)."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def sentences(self, sources: Sequence[Source], limit: int) -> list[_Sentence]:
        out = []
        for i, source in enumerate(sources[:limit]):
            for start, end in sentence_spans(source.text):
                text = clean_sentence(source.text[start:end])
                if len(text) >= MIN_SENTENCE_CHARS and content_words(text):
                    out.append(_Sentence(i, start, text))
        return out

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [[float(x) for x in v] for v in self.embedder.embed_batch(texts)] if texts else []


class ExtractiveAnswerer:
    """Picks, orders and cites sentences of the retrieved passages. No language model."""

    def __init__(
        self,
        embedder: Embedder,
        *,
        threshold: float | None = None,
        max_sentences: int = 4,
        max_chars: int = 900,
        sources_used: int = 6,
        diversity: float = 0.3,
    ) -> None:
        self.relevance = Relevance(embedder)
        self.threshold = threshold_for(embedder) if threshold is None else threshold
        self.max_sentences = max_sentences
        self.max_chars = max_chars
        self.sources_used = sources_used
        self.diversity = diversity

    def score(self, question: str, sources: Sequence[Source]) -> tuple[
        list[_Sentence], list[float], list[list[float]], list[float]
    ]:
        """Sentences with their relevance and vectors, and each passage's relevance."""
        sentences = self.relevance.sentences(sources, self.sources_used)
        used = sources[: self.sources_used]
        vectors = self.relevance.embed(
            [question] + [s.text for s in sentences] + [f"{s.title}\n{s.text}" for s in used]
        )
        q = vectors[0]
        sent_vecs = vectors[1 : 1 + len(sentences)]
        passage_rel = [_dot(q, v) for v in vectors[1 + len(sentences) :]]
        return sentences, [_dot(q, v) for v in sent_vecs], sent_vecs, passage_rel

    def answer(self, question: str, sources: Sequence[Source]) -> Answer:
        if not sources:
            return abstain()
        sentences, rel, vecs, passage_rel = self.score(question, sources)
        best = max(rel + passage_rel, default=0.0)
        if best < self.threshold or not sentences:
            log.info("abstaining: best relevance %.3f < %.3f", best, self.threshold)
            return abstain()
        # A sentence is read in its passage: a step of a how-to rarely repeats the
        # question's words, but the passage it stands in does.
        rel = [
            (1 - CONTEXT_WEIGHT) * r + CONTEXT_WEIGHT * passage_rel[s.source]
            for r, s in zip(rel, sentences, strict=True)
        ]
        picked = self._mmr(sentences, rel, vecs)
        if not picked:
            return abstain()
        # Reading order: by passage rank, then by place in the passage.
        picked.sort(key=lambda i: (sentences[i].source, sentences[i].start))
        numbers: dict[int, int] = {}
        parts = []
        for i in picked:
            n = numbers.setdefault(sentences[i].source, len(numbers) + 1)
            parts.append(f"{sentences[i].text} [{n}]")
        source_score: dict[int, float] = {}
        for i in picked:
            s = sentences[i].source
            source_score[s] = max(source_score.get(s, -1.0), rel[i])
        citations = tuple(
            Citation.of(n, sources[s], source_score[s])
            for s, n in sorted(numbers.items(), key=lambda kv: kv[1])
        )
        return Answer(" ".join(parts), citations, False)

    def _mmr(
        self, sentences: list[_Sentence], rel: list[float], vecs: list[list[float]]
    ) -> list[int]:
        best = max(rel)
        # A sentence far below the best one is padding, not an answer.
        floor = max(self.threshold * 0.9, best - 0.2)
        candidates = [i for i in range(len(sentences)) if rel[i] >= floor]
        picked: list[int] = []
        total = 0
        while candidates and len(picked) < self.max_sentences:
            def mmr(i: int) -> float:
                redundancy = max((_dot(vecs[i], vecs[j]) for j in picked), default=0.0)
                return (1 - self.diversity) * rel[i] - self.diversity * redundancy

            choice = max(candidates, key=lambda i: (mmr(i), -i))
            candidates.remove(choice)
            if picked and max(_dot(vecs[choice], vecs[j]) for j in picked) > 0.9:
                continue  # says again what is already said
            if picked and total + len(sentences[choice].text) > self.max_chars:
                continue
            picked.append(choice)
            total += len(sentences[choice].text)
        return picked


# -- generated answers ----------------------------------------------------------


class Generator(Protocol):
    """Writes an answer from numbered passages (an LLM behind some API)."""

    @property
    def name(self) -> str: ...

    def generate(self, question: str, sources: Sequence[Source]) -> str: ...


_CITE = re.compile(r"\s*\[(\s*\d+(?:\s*(?:,|;|-|–|and)\s*\d+)*\s*)\]")
_NUM_RANGE = re.compile(r"(\d+)\s*(?:-|–)\s*(\d+)|(\d+)")


def _numbers(inside: str) -> list[int]:
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
        valid = [n for n in _numbers(match.group(1)) if 1 <= n <= given]
        if not valid:
            return ""
        new = []
        for n in valid:
            if n not in order:
                order.append(n)
            new.append(order.index(n) + 1)
        unique = list(dict.fromkeys(new))
        return " " + "".join(f"[{n}]" for n in unique)

    out = _CITE.sub(replace, text)
    out = re.sub(r"[ \t]+([.,;:!?])", r"\1", out)
    return out.strip(), order


def generated_answer(
    question: str, sources: Sequence[Source], generator: Generator
) -> Answer:
    """Let a generator write the answer; check every citation it makes."""
    from commons.model.errors import CommonsError

    text = generator.generate(question, sources).strip()
    if not text:
        raise CommonsError(f"the language model ({generator.name}) returned an empty answer")
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
    return Answer(text, citations, False)


def answer_question(
    question: str,
    sources: Sequence[Source],
    embedder: Embedder,
    *,
    generator: Generator | None = None,
    threshold: float | None = None,
) -> Answer:
    """The extractive answer, or a generator's answer if the passages are relevant enough."""
    extractive = ExtractiveAnswerer(embedder, threshold=threshold)
    if generator is None:
        return extractive.answer(question, sources)
    if not sources:
        return abstain()
    _, rel, _, passage_rel = extractive.score(question, sources)
    if max(rel + passage_rel, default=0.0) < extractive.threshold:
        return abstain()  # do not invite a model to answer from noise
    return generated_answer(question, sources, generator)
