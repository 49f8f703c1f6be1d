"""Is a language model's text an answer? Tidied first, then judged.

A small model can print its instructions back, loop on one phrase, write
nothing, or write fluent text about things its passages never mention. None of
that is shown as an answer: `reason_to_set_aside` says why, and the caller
shows the extractive answer instead (`commons.answers.generated.answer_question`).
A small model also numbers what it copies as if it were a list ("[3] ..." before
text of passage 1), or cites nothing: `citations_checked` keeps a citation only
where the cited passage holds most of the sentence's words, and cites a sentence
left without one to the passage that does.

The grounding test is deliberately plain: most of the answer's content words
(stemmed) must occur in the passages it was given or in the question. A model
that paraphrases keeps most of them; one that invents does not.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from commons.model.text import content_words, stem, words

ECHO_WORDS = 6  # this many words in a row from the instructions: it is repeating them
MIN_GROUNDED = 0.7  # share of its content words that must be in the passages or question
REPEAT_NGRAM = 4  # a text whose 4-word sequences are mostly repeats is looping
MIN_DISTINCT = 0.5
MIN_WORDS_TO_CITE = 3  # a shorter piece ("5.", "Yes.") is not cited on the model's behalf

_CITATION = re.compile(r"\[[^\]]*\]")
_PATTERN_AGAIN = re.compile(r"\n\s*(?:Question|Passages?|Answer)\s*:", re.IGNORECASE)
_ANSWER_LABEL = re.compile(r"^\s*(?:Answer\s*:\s*)", re.IGNORECASE)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")
_FINISHED = re.compile(r"""[.!?:;)\]"'`”]\s*$""")


def tidy(text: str) -> str:
    """The text without a new round of the prompt's pattern, repeated sentences or an
    unfinished last sentence (a model stopped by its token limit)."""
    text = _ANSWER_LABEL.sub("", _PATTERN_AGAIN.split(text, maxsplit=1)[0]).strip()
    seen: set[str] = set()
    lines: list[list[str]] = []
    for line in text.splitlines():
        kept: list[str] = []
        for sentence in _SENTENCE_BREAK.split(line.strip()):
            key = " ".join(words(_CITATION.sub(" ", sentence)))
            if key in seen:
                continue
            if key:
                seen.add(key)
            kept.append(sentence)
        if kept:
            lines.append(kept)
    if lines and (len(lines) > 1 or len(lines[-1]) > 1) and not _FINISHED.search(lines[-1][-1]):
        lines[-1].pop()  # cut off mid-sentence
    return "\n".join(" ".join(kept) for kept in lines if kept).strip()


def citations_checked(text: str, passages: Sequence[str]) -> str:
    """Each citation of a passage 1..len(passages) kept only if that passage holds most
    of its sentence's content words; a sentence left without one is cited to the
    passage that holds most of its words, if one does (checked here, not by the
    model). Numbers outside 1..len(passages) are left for `renumber_citations` to drop."""
    from commons.answers.generated import CITATION_MARK, citation_numbers

    vocabularies = [{stem(w) for w in words(p)} for p in passages]

    def share(n: int, own: set[str]) -> float:
        return len(own & vocabularies[n - 1]) / len(own) if own else 1.0

    def checked(sentence: str) -> str:
        own = {stem(w) for w in content_words(_CITATION.sub(" ", sentence))}
        cited: list[int] = []

        def keep(match: re.Match[str]) -> str:
            numbers = [n for n in citation_numbers(match.group(1))
                       if not 1 <= n <= len(passages) or share(n, own) >= MIN_GROUNDED]
            cited.extend(n for n in numbers if 1 <= n <= len(passages))
            return " " + "".join(f"[{n}]" for n in dict.fromkeys(numbers)) if numbers else ""

        out = CITATION_MARK.sub(keep, sentence).strip()
        if cited or len(own) < MIN_WORDS_TO_CITE or not passages:
            return out
        best = max(range(1, len(passages) + 1), key=lambda n: (share(n, own), -n))
        if share(best, own) < MIN_GROUNDED:
            return out
        end = re.search(r"[.!?]+$", out)
        at = end.start() if end else len(out)
        return f"{out[:at]} [{best}]{out[at:]}"

    lines = []
    for line in text.split("\n"):
        pieces = [checked(sentence) for sentence in _SENTENCE_BREAK.split(line)]
        lines.append(" ".join(p for p in pieces if p))
    return "\n".join(lines).strip()


def _ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def grounding(text: str, question: str, passages: Sequence[str]) -> tuple[int, int]:
    """(found, total): the text's content words (stemmed) and how many of them occur
    in the passages or the question."""
    known = {stem(w) for w in words(question + "\n" + "\n".join(passages))}
    own = {stem(w) for w in content_words(_CITATION.sub(" ", text))}
    return len(own & known), len(own)


def reason_to_set_aside(
    text: str, question: str, passages: Sequence[str], instructions: Sequence[str]
) -> str | None:
    """Why `text` is not an answer to show, or None if it may be shown."""
    tokens = words(_CITATION.sub(" ", text))
    if not content_words(" ".join(tokens)):
        return "it wrote nothing"
    told = {g for line in instructions for g in _ngrams(words(line), ECHO_WORDS)}
    if told & set(_ngrams(tokens, ECHO_WORDS)):
        return "it repeated its instructions"
    grams = _ngrams(tokens, REPEAT_NGRAM)
    if len(grams) >= 8 and len(set(grams)) < MIN_DISTINCT * len(grams):
        return "it repeated itself"
    asked = {stem(w) for w in words(question)}
    if {stem(w) for w in content_words(" ".join(tokens))} <= asked:
        return "it only repeated the question"
    found, total = grounding(text, question, passages)
    if found < MIN_GROUNDED * total:
        return (f"only {found} of its {total} words are in the passages it was given"
                " (it may have made things up)")
    return None
