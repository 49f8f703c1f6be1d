"""Answers built from retrieved passages, every sentence cited.

The default answerer is extractive and needs no language model. What a reader
sees is what an author wrote and signed, so the sentences have to be chosen
with care (docs/retrieval.md has the measurements behind each rule):

1. Only documents that are actually relevant speak: a document's relevance is
   the cosine similarity of its best passage to the question (from retrieval,
   so nothing is embedded again), and a document far below the best one is
   left out, however high it ranked by words alone.
2. Only statements can be answer sentences: headings, titles, list markers,
   code, questions (or sentences quoting an example question) and sentences
   that only frame a question or say how a study was done never are
   (`commons.answers.sentences`). A short relevant document is read whole: the
   sentence that answers is often next to the passage that matched.
3. A sentence's score is its own similarity to the question, plus the words it
   shares with the question, plus its document's relevance, plus, when the
   question is a claim to check, how late in its document it stands (findings
   come after background and methods). The best one comes first; a few more
   follow if they are nearly as good and say something new (maximal marginal
   relevance).
4. It abstains when the best document or the best statement is below a
   threshold: quoting the least bad sentence of an unrelated document would
   look like an answer and be noise. A passage that matches only through an
   example question or a heading does not count as a match.

Only the candidate statements of the relevant documents are embedded (one
batch), and the question's vector comes from retrieval.

A language model may write the answer instead: `commons.answers.generated`.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from commons.answers.sentences import Kind, pieces
from commons.model.text import content_words, stem
from commons.search.embedding import Embedder

log = logging.getLogger(__name__)

ABSTAIN_TEXT = (
    "Nothing in this commons answers that question. Try other words, fewer filters,"
    " or sync with a peer that may know more."
)


@dataclass(frozen=True)
class Tuning:
    """The answerer's numbers, per embedder; tuned with bench/answers.py on SciFact dev."""

    document_floor: float  # abstain if the best document's similarity is below
    sentence_floor: float  # abstain if the best statement's similarity is below
    document_margin: float  # documents further below the best one are left out
    sentence_margin: float  # further sentences must score within this of the first
    lexical_weight: float  # share of a sentence's score from words shared with the question
    context_weight: float  # share from its document's relevance
    position_weight: float = 0.0  # share from how far into its document the sentence comes


# MiniLM puts unrelated English text at 0.0-0.25 and a passage that answers a
# question at 0.45 and above. The hash embedder (tests) counts shared words.
TUNINGS = {
    "minilm-l6-v2": Tuning(0.40, 0.30, 0.12, 0.08, 0.3, 0.4, 0.1),
    "hash": Tuning(0.25, 0.25, 0.15, 0.1, 0.3, 0.2),
}
DEFAULT_TUNING = TUNINGS["hash"]
MAX_CANDIDATES = 12  # statements embedded per question, best by shared words first
EMBED_BATCH = 8
# A relevant document up to this long is read whole, not only its retrieved passages:
# the sentence that answers is often next to the passage that matched.
READ_WHOLE_CHARS = 8000


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
    # cosine similarity of the document's best passage to the question (retrieval's);
    # None: not known, the answerer embeds the passage itself
    similarity: float | None = None
    verified: bool = False  # its signature was checked against its author's key just now
    # the document's whole body (text = document[start:end]); None: only the passage is known
    document: str | None = None


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
    verified: bool  # the document's signature held when the answer was made

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
            verified=source.verified,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SetAside:
    """A language model's text that was not shown as the answer, and why."""

    model: str
    reason: str


@dataclass(frozen=True)
class Answer:
    text: str
    citations: tuple[Citation, ...] = ()
    abstained: bool = False
    model: str | None = None  # the language model that wrote it; None: extractive
    set_aside: SetAside | None = None  # a model asked, whose text this answer replaces

    def to_json(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "citations": [c.to_json() for c in self.citations],
            "abstained": self.abstained,
            "model": self.model,
            "set_aside": asdict(self.set_aside) if self.set_aside else None,
        }


def abstain() -> Answer:
    return Answer(ABSTAIN_TEXT, (), True)


def tuning_for(embedder: Embedder) -> Tuning:
    return TUNINGS.get(embedder.name, DEFAULT_TUNING)


@dataclass(frozen=True)
class _Sentence:
    source: int  # index into the sources: its passage, or (offset set) one of its document's
    text: str
    place: float  # how far into its document it starts, 0 to 1 (0.5: not known)
    offset: int | None = None  # where it starts in its document's body, when read whole


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return float(sum(x * y for x, y in zip(a, b, strict=True)))


def _stems(text: str) -> set[str]:
    return {stem(w) for w in content_words(text)}


def _overlap(question: set[str], text: str) -> float:
    """Share of the question's content words that the text has."""
    return len(question & _stems(text)) / len(question) if question else 0.0


def _weighted_overlaps(question: set[str], texts: list[str]) -> list[float]:
    """Each text's share of the question's words, a word weighing more the fewer of the
    texts have it: the topic's words are in every candidate, the words that say what
    the question asks about it are in few, and those tell the candidates apart."""
    stems = [_stems(t) & question for t in texts]
    n = len(texts)
    weight = {w: math.log((n + 1) / (0.5 + sum(w in s for s in stems))) for w in question}
    total = sum(weight.values())
    return [sum(weight[w] for w in s) / total if total > 0 else 0.0 for s in stems]


class ExtractiveAnswerer:
    """Picks, orders and cites sentences of the retrieved passages. No language model."""

    def __init__(
        self,
        embedder: Embedder,
        *,
        tuning: Tuning | None = None,
        max_sentences: int = 3,
        max_chars: int = 700,
        sources_used: int = 6,
        diversity: float = 0.3,
    ) -> None:
        self.embedder = embedder
        self.tuning = tuning_for(embedder) if tuning is None else tuning
        self.max_sentences = max_sentences
        self.max_chars = max_chars
        self.sources_used = sources_used
        self.diversity = diversity

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Vectors of the texts, in small batches: padding every sentence to the longest
        of 32 costs more than it saves (24 sentences: 0.19 s in batches of 8, 0.37 s in
        one batch)."""
        out: list[list[float]] = []
        for start in range(0, len(texts), EMBED_BATCH):
            batch = self.embedder.embed_batch(texts[start : start + EMBED_BATCH])
            out.extend([float(x) for x in v] for v in batch)
        return out

    def relevant(
        self, question: str, sources: Sequence[Source], vector: Sequence[float] | None = None
    ) -> tuple[list[int], dict[int, float], list[float]]:
        """The sources worth reading (indices, best document first), each source's
        document relevance, and the question's vector."""
        used = list(sources[: self.sources_used])
        unknown = [i for i, s in enumerate(used) if s.similarity is None]
        texts = [f"{used[i].title}\n{used[i].text}" for i in unknown]
        vectors = self.embed(([question] if vector is None else []) + texts)
        q = list(vector) if vector is not None else vectors.pop(0)
        similarity = {i: s.similarity for i, s in enumerate(used) if s.similarity is not None}
        for i, v in zip(unknown, vectors, strict=True):
            similarity[i] = _dot(q, v)
        doc_best: dict[bytes, float] = {}
        for i, s in enumerate(used):
            doc_best[s.doc] = max(doc_best.get(s.doc, -1.0), similarity[i])
        best = max(doc_best.values(), default=0.0)
        keep = [
            i for i, s in enumerate(used)
            if doc_best[s.doc] >= best - self.tuning.document_margin
        ]
        keep.sort(key=lambda i: -doc_best[used[i].doc])
        return keep, {i: doc_best[used[i].doc] for i in keep}, q

    def answer(
        self, question: str, sources: Sequence[Source], vector: Sequence[float] | None = None
    ) -> Answer:
        if not sources:
            return abstain()
        keep, doc_rel, q = self.relevant(question, sources, vector)
        best_doc = max(doc_rel.values(), default=0.0)
        if best_doc < self.tuning.document_floor:
            log.info("abstaining: best document %.3f < %.3f", best_doc,
                     self.tuning.document_floor)
            return abstain()
        words = _stems(question)
        read = list(sources)  # a sentence read outside the passages gets its own appended
        sentences = self._statements(read, keep)
        rel = {read[i].doc: doc_rel[i] for i in keep}
        lexical = _weighted_overlaps(words, [s.text for s in sentences])
        if len(sentences) > MAX_CANDIDATES:  # embed only the likeliest
            order = sorted(range(len(sentences)), key=lambda j: (-lexical[j], j))
            chosen = sorted(order[:MAX_CANDIDATES])
            sentences = [sentences[j] for j in chosen]
            lexical = [lexical[j] for j in chosen]
        vecs = self.embed([s.text for s in sentences])
        cosine = [_dot(q, v) for v in vecs]
        if not sentences or max(cosine) < self.tuning.sentence_floor:
            log.info("abstaining: no statement is close to the question")
            return abstain()
        t = self.tuning
        # A claim to check is answered by a finding, which reports put after their
        # background and methods; a question ("what is...?") is often answered first thing.
        position = t.position_weight if is_claim(question) else 0.0
        own = 1 - t.lexical_weight - t.context_weight - position
        score = [
            own * c + t.lexical_weight * lex + t.context_weight * rel[read[s.source].doc]
            + position * s.place
            for c, lex, s in zip(cosine, lexical, sentences, strict=True)
        ]
        picked = self._mmr(sentences, score, vecs)
        cited = {j: _passage_of(read, sentences[j]) for j in picked}
        numbers: dict[int, int] = {}
        parts = []
        for j in picked:
            n = numbers.setdefault(cited[j], len(numbers) + 1)
            parts.append(f"{sentences[j].text} [{n}]")
        citations = tuple(
            Citation.of(n, read[i], max(score[j] for j in picked if cited[j] == i))
            for i, n in sorted(numbers.items(), key=lambda kv: kv[1])
        )
        return Answer(" ".join(parts), citations, False)

    def _statements(self, sources: list[Source], keep: list[int]) -> list[_Sentence]:
        """The candidate statements of the relevant documents, best document first, each
        once. A document of up to READ_WHOLE_CHARS is read whole; a longer one, or one
        whose body is not known, through its retrieved passages."""
        out: dict[str, _Sentence] = {}
        done: set[bytes] = set()
        for i in keep:
            source = sources[i]
            body = source.document
            if body is not None and len(body) <= READ_WHOLE_CHARS:
                if source.doc in done:
                    continue
                done.add(source.doc)
                for piece in pieces(body, source.title):
                    if piece.kind is Kind.STATEMENT and piece.text not in out:
                        out[piece.text] = _Sentence(
                            i, piece.text, _place(piece.start, len(body)), piece.start)
                continue
            for piece in pieces(source.text, source.title):
                if piece.kind is Kind.STATEMENT and piece.text not in out:
                    offset = source.start + piece.start
                    place = _place(offset, len(body)) if body else 0.5
                    out[piece.text] = _Sentence(i, piece.text, place)
        return list(out.values())

    def _mmr(self, sentences: list[_Sentence], score: list[float],
             vecs: list[list[float]]) -> list[int]:
        """The best sentence, then up to a few nearly as good that add something new."""
        first = max(range(len(score)), key=lambda j: (score[j], -j))
        picked = [first]
        total = len(sentences[first].text)
        floor = score[first] - self.tuning.sentence_margin
        candidates = [j for j in range(len(score)) if j != first and score[j] >= floor]
        while candidates and len(picked) < self.max_sentences:
            def mmr(j: int) -> float:
                redundancy = max(_dot(vecs[j], vecs[k]) for k in picked)
                return (1 - self.diversity) * score[j] - self.diversity * redundancy

            choice = max(candidates, key=lambda j: (mmr(j), -j))
            candidates.remove(choice)
            if max(_dot(vecs[choice], vecs[k]) for k in picked) > 0.9:
                continue  # says again what is already said
            if total + len(sentences[choice].text) > self.max_chars:
                continue
            picked.append(choice)
            total += len(sentences[choice].text)
        return picked


_ASKING = re.compile(
    r"^(?:what|how|why|when|where|who|whom|whose|which|can|could|do|does|did|is|are|was"
    r"|were|should|shall|will|would|may|might|must|has|have|had)\b",
    re.IGNORECASE,
)


def is_claim(question: str) -> bool:
    """A statement to check ("X causes Y"), not a question that asks."""
    text = question.strip()
    return bool(text) and not text.endswith("?") and not _ASKING.match(text)


def _place(offset: int, length: int) -> float:
    """How far into its document a sentence starts, 0 to 1."""
    return offset / length


def _passage_of(sources: list[Source], sentence: _Sentence) -> int:
    """The index of the source to cite for a sentence: a passage of its document that
    holds it; for a sentence read outside them, the document's passage around it,
    appended to the sources."""
    if sentence.offset is None:
        return sentence.source
    offset, own = sentence.offset, sources[sentence.source]
    for j, s in enumerate(sources):  # the retrieved passages first, then ones appended
        if s.doc == own.doc and s.start <= offset < s.end:
            return j
    from commons.search.chunking import chunk_text

    assert own.document is not None  # offset is set only for a document read whole
    chunk = next(c for c in reversed(chunk_text(own.document)) if c.start <= offset)
    sources.append(replace(own, text=chunk.text, start=chunk.start, end=chunk.end,
                           page=chunk.page))
    return len(sources) - 1
