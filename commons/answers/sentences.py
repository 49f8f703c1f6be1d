"""Which pieces of a passage can be an answer sentence, and which never can.

A reader takes an answer's sentences for statements. A heading, a document's
title, a bare list marker or a line of code is not one; neither is a
question, nor a sentence that quotes an example question ("How much chlorine
to treat 20 litres?" works better than "water safety"): quoted on its own it
looks like an answer to that very question and says nothing.

Nor is a sentence that only frames a question: one that says what a study set
out to learn, that something is not known, or, in a structured abstract, a
sentence labelled as the aim, background or method ("OBJECTIVE To determine
whether...", "DESIGN Retrospective analysis of..."). Such sentences repeat the
question's words, so they score high, yet they tell the reader nothing found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from commons.model.text import content_words
from commons.search.chunking import sentence_spans

MIN_SENTENCE_CHARS = 25
HEADING_MAX_WORDS = 12
_MARKUP_START = re.compile(r"^\s*(?:#{1,6}\s+|[-*+•]\s+|\d{1,3}[.)]\s+|>\s*)+")
_EMPHASIS = re.compile(r"(\*\*|__)(.+?)\1")
_FENCE = re.compile(r"^ {0,3}(```|~~~)", re.MULTILINE)
_CODE_LINE = re.compile(r"^(?: {4,}|\t|\$ |>>> |% )")
_QUOTED_QUESTION = re.compile(r"[\"“‘'][^\"”’']{3,200}\?[\"”’']")
_SECTION_NUMBER = re.compile(r"^\d+(?:\.\d+)*\.?\s")
_TERMINAL = ".!?:;"
# Labels of a structured abstract's parts that say what was asked or done, not found.
_FRAMING_LABEL = re.compile(
    r"^(?:OBJECTIVES?|AIMS?|PURPOSE|BACKGROUND|CONTEXT|INTRODUCTION|IMPORTANCE|RATIONALE"
    r"|QUESTIONS?|HYPOTHESIS|DESIGN|SETTINGS?|PATIENTS|PARTICIPANTS|SUBJECTS|POPULATION"
    r"|METHODS?|MATERIALS|INTERVENTIONS?|EXPOSURES?|MEASUREMENTS?|MAIN OUTCOMES?"
    r"|OUTCOME MEASURES?|DATA SOURCES|STUDY SELECTION|DATA EXTRACTION|SELECTION CRITERIA"
    r"|ELIGIBILITY CRITERIA|STUDY DESIGN|SEARCH METHODS|REVIEW METHODS)"
    r"(?:,? (?:AND )?[A-Z]{3,}(?: [A-Z]{3,})*)*\b(?! [a-z])"
)
# "It is unclear whether...", "the role of X is not well understood": a question, asked.
_UNKNOWN = re.compile(
    r"\b(?:(?:is|are|was|were|remains?|remained)\s+(?:still\s+|largely\s+|currently\s+)?"
    r"(?:unknown|unclear|uncertain|elusive|not (?:yet |well |fully |completely )?(?:known"
    r"|understood|clear|established|determined)|poorly (?:understood|defined|characteri[sz]ed)"
    r"|(?:un|under)explored|controversial)|remains? elusive|little is known|poorly understood"
    r"|(?:has|have) not (?:yet )?been (?:well |fully |previously |directly )?(?:compared"
    r"|studied|investigated|examined|determined|established|evaluated|assessed|described"
    r"|characteri[sz]ed|explored|addressed|reported)"
    r"|remains? to be (?:understood|determined|elucidated|established|explored|clarified)"
    r"|(?:further |more )?(?:research|studies|study|work|trials) (?:is|are)"
    r" (?:required|needed|warranted))\b",
    re.IGNORECASE,
)
# "To determine whether...", "We investigated whether...": what a study set out to learn.
_AIM = re.compile(
    r"^(?:(?:here|in this (?:study|work|paper|review)),?\s+)?(?:(?:we|this study|the"
    r" (?:present |current )?study|this (?:review|paper|work)|our (?:aim|objective|goal)|the"
    r" (?:aim|objective|goal|purpose) of (?:this|the|our) \w+)\s+(?:\w+\s+){0,2}?"
    r"(?:aim(?:s|ed)? to|sought to|set out to|asked|ask|tested|test|investigated|investigate"
    r"|examined|examine|evaluated|evaluate|assessed|assess|explored|explore|determined"
    r"|determine|was to \w+)\s+(?:whether|if|how|what)\b"
    r"|to (?:determine|assess|test|investigate|examine|evaluate|explore|compare|describe"
    r"|identify|quantify|estimate|characteri[sz]e|establish|provide information)\b[^,;]*$"
    r"|to (?:address|test|examine|determine|assess|investigate|explore|evaluate)"
    r" (?:whether|if|this|these|that hypothesis|the hypothesis)\b"
    r"|(?:the|our) (?:aims?|objectives?|goals?|purposes?) (?:of (?:this|the|our) \w+ )?"
    r"(?:was|were|is|are) to\b|we (?:hypothesi[sz]ed|postulated|reasoned|speculated) that\b"
    r"|this (?:guide|document|page|section|chapter|article|note|essay|review|paper)"
    r" (?:covers|explains|describes|shows|discusses|presents|is about|looks at)\b)"
    r"|\bwith the (?:aim|objective|goal|purpose) (?:of|to)\b",
    re.IGNORECASE,
)

# "Here we analysed X using Y", "Patients were randomly assigned to...": what was done,
# said without what was found.
_METHOD = re.compile(
    r"^(?:here,?\s+|in this (?:study|work|paper|review),?\s+)?(?:we|our approach)\s+"
    r"(?:will\s+)?(?:analy[sz]ed|studied|used|employed|performed|conducted|measured"
    r"|recruited|enrolled|discuss|review|involves)\b"
    r"|\b(?:were|was) (?:randomly )?(?:assigned|randomi[sz]ed|enrolled|recruited)\b"
    r"|\b(?:was|were) (?:used|utili[sz]ed|employed) to (?:examine|assess|investigate|evaluate"
    r"|determine|study|test|measure)\b|^we addressed this by\b|\bwe expect that this\b",
    re.IGNORECASE,
)
_FINDING = re.compile(
    r"\b(?:show\w*|demonstrat\w*|f[oi]und|find\w*|reveal\w*|identif\w*|suggest\w*"
    r"|indicat\w*|conclu\w*)\b",
    re.IGNORECASE,
)


class Kind(Enum):
    """What a piece of a passage is, as far as answering goes."""

    STATEMENT = "statement"  # may be quoted as an answer
    QUESTION = "question"  # a question, or a sentence quoting an example question
    FRAMING = "framing"  # frames a question: an aim, an unknown, a labelled method
    HEADING = "heading"  # a heading, a title, a line without a sentence's end
    CODE = "code"
    FRAGMENT = "fragment"  # too short, or only markup


@dataclass(frozen=True)
class Piece:
    start: int  # offset in the passage
    text: str  # cleaned: one line, no list or heading markup
    kind: Kind


def clean_sentence(text: str) -> str:
    """A sentence as shown in an answer: one line, without list or heading markup."""
    text = " ".join(text.split())
    text = _MARKUP_START.sub("", text)
    return _EMPHASIS.sub(r"\2", text).replace("**", "")


def _fenced(text: str) -> list[tuple[int, int]]:
    """Spans of fenced code blocks (an unclosed fence runs to the end)."""
    marks = [m.start() for m in _FENCE.finditer(text)]
    if len(marks) % 2:
        marks.append(len(text))
    return [(marks[i], marks[i + 1]) for i in range(0, len(marks), 2)]


def _same_words(a: str, b: str) -> bool:
    return bool(a) and content_words(a) == content_words(b)


def _is_heading_line(line: str, title: str) -> bool:
    """A line of its own that reads as a heading or a title, not a sentence."""
    bare = clean_sentence(line)
    if not bare:
        return True
    if _same_words(bare, title) or _SECTION_NUMBER.match(bare):
        return len(bare.split()) <= HEADING_MAX_WORDS * 2
    return bare[-1] not in _TERMINAL and len(bare.split()) <= HEADING_MAX_WORDS


def _split_lines(passage: str, start: int, end: int, title: str) -> list[tuple[int, int, Kind]]:
    """A sentence span cut at lines that are headings or code, which are marked as such."""
    out: list[tuple[int, int, Kind]] = []
    cursor = start
    line_start = start
    while line_start < end:
        line_end = passage.find("\n", line_start, end)
        last = line_end < 0
        line_end = end if last else line_end
        line = passage[line_start:line_end]
        # A line is a heading only if it stands alone: the sentence runs on after it.
        heading = not last and _is_heading_line(line, title)
        whole_line = passage[passage.rfind("\n", 0, line_start) + 1 : line_end]
        if heading or _CODE_LINE.match(whole_line):
            if line_start > cursor:
                out.append((cursor, line_start, Kind.STATEMENT))
            out.append((line_start, line_end, Kind.HEADING if heading else Kind.CODE))
            cursor = line_end + 1
        line_start = line_end + 1
    if cursor < end:
        out.append((cursor, end, Kind.STATEMENT))
    return out


def _kind(text: str, raw: str, title: str) -> Kind:
    if len(text) < MIN_SENTENCE_CHARS or not content_words(text):
        return Kind.FRAGMENT
    if text.endswith("?") or _QUOTED_QUESTION.search(text):
        return Kind.QUESTION
    if _same_words(text, title) or (
        "\n" not in raw and text[-1] not in _TERMINAL + "\"”')]"
        and len(text.split()) <= HEADING_MAX_WORDS // 2
    ):
        return Kind.HEADING
    if text.count("`") >= 2 and len(text.split()) <= 3:
        return Kind.CODE
    if _FRAMING_LABEL.match(text) or _UNKNOWN.search(text) or _AIM.search(text):
        return Kind.FRAMING
    if _METHOD.search(text) and not _FINDING.search(text):
        return Kind.FRAMING
    return Kind.STATEMENT


def pieces(passage: str, title: str) -> list[Piece]:
    """Every sentence-sized piece of a passage, each with what it is."""
    fences = _fenced(passage)
    out: list[Piece] = []
    for start, end in sentence_spans(passage):
        if any(a <= start < b for a, b in fences):
            out.append(Piece(start, clean_sentence(passage[start:end]), Kind.CODE))
            continue
        for s, e, kind in _split_lines(passage, start, end, title):
            raw = passage[s:e]
            text = clean_sentence(raw)
            if not text:
                continue
            if kind is Kind.STATEMENT:
                kind = _kind(text, raw, title)
            out.append(Piece(s, text, kind))
    return out
