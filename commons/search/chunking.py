"""Split a document body into passages by its structure.

A passage is a span of the body (start and end are character offsets), so a
citation can point at the exact place in the signed text and the TUI can
highlight it. Pages (form feeds, from PDFs), headings and paragraphs are the
seams; a paragraph longer than a passage is cut at sentence ends, and a
passage cut inside a section repeats the previous passage's last sentence so
that an idea split across the cut can still be found whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# all-MiniLM-L6-v2 reads at most 256 word pieces; about 4 characters each in
# English prose, less in technical text. 1000 characters plus a title stays
# inside that window, so nothing we embed is silently truncated.
MAX_CHARS = 1000
MIN_CHARS = 300  # a shorter passage absorbs the next heading instead of ending
OVERLAP_CHARS = 200

PAGE_BREAK = "\f"
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_HEADING = re.compile(r"^ {0,3}#{1,6}\s", re.MULTILINE)
# A sentence ends at . ! ? (and closing quotes or brackets) followed by space
# and something that can start a sentence. Good enough for prose; a missed
# boundary only makes a sentence longer.
_SENTENCE_END = re.compile(r"(?<=[.!?])([\"'”’)\]*_]*)\s+(?=[\"'“‘(\[*_`]*[A-Z0-9])")


@dataclass(frozen=True)
class Chunk:
    """A passage of a document: body[start:end]."""

    position: int
    start: int
    end: int
    page: int | None  # 1-based page for paged (PDF) bodies, else None
    text: str


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    page: int
    heading: bool


def strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    """The span without surrounding whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans of text[start:end], as offsets into text."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    cursor = start
    for match in _SENTENCE_END.finditer(text, start, end):
        s, e = strip_span(text, cursor, match.end(1))  # closing quotes stay with it
        if e > s:
            spans.append((s, e))
        cursor = match.end()
    s, e = strip_span(text, cursor, end)
    if e > s:
        spans.append((s, e))
    return spans


def _hard_split(text: str, start: int, end: int, limit: int) -> list[tuple[int, int]]:
    """Cut a span with no sentence ends at whitespace, at most `limit` characters each."""
    spans = []
    while end - start > limit:
        cut = text.rfind(" ", start + limit // 2, start + limit)
        cut = cut if cut > start else start + limit
        s, e = strip_span(text, start, cut)
        if e > s:
            spans.append((s, e))
        start = cut
    s, e = strip_span(text, start, end)
    if e > s:
        spans.append((s, e))
    return spans


def _blocks(body: str, start: int, end: int) -> list[tuple[int, int, bool]]:
    """Paragraphs of body[start:end], with every heading line a block of its own."""
    blocks: list[tuple[int, int, bool]] = []
    cursor = start
    bounds = [m.span() for m in _PARAGRAPH_BREAK.finditer(body, start, end)] + [(end, end)]
    for para_end, next_start in bounds:
        line_start = cursor
        para_start = cursor
        while line_start < para_end:
            line_end = body.find("\n", line_start, para_end)
            line_end = para_end if line_end < 0 else line_end
            if _HEADING.match(body, line_start, line_end):
                if line_start > para_start:
                    blocks.append((para_start, line_start, False))
                blocks.append((line_start, line_end, True))
                para_start = line_end
            line_start = line_end + 1
        if para_end > para_start:
            blocks.append((para_start, para_end, False))
        cursor = next_start
    return [(s, e, h) for s, e, h in (_strip3(body, *b) for b in blocks) if e > s]


def _strip3(body: str, start: int, end: int, heading: bool) -> tuple[int, int, bool]:
    s, e = strip_span(body, start, end)
    return s, e, heading


def _units(body: str, max_chars: int) -> list[_Unit]:
    units: list[_Unit] = []
    page_start = 0
    for page, page_text in enumerate(body.split(PAGE_BREAK), start=1):
        page_end = page_start + len(page_text)
        for start, end, heading in _blocks(body, page_start, page_end):
            if heading or end - start <= max_chars:
                units.append(_Unit(start, end, page, heading))
                continue
            for s_start, s_end in split_sentences(body, start, end):
                for h_start, h_end in _hard_split(body, s_start, s_end, max_chars):
                    units.append(_Unit(h_start, h_end, page, False))
        page_start = page_end + 1
    return units


def chunk_text(
    body: str,
    *,
    max_chars: int = MAX_CHARS,
    min_chars: int = MIN_CHARS,
    overlap_chars: int = OVERLAP_CHARS,
) -> list[Chunk]:
    """Passages of a body, in order. Every non-blank character is in at least one."""
    paged = PAGE_BREAK in body
    spans: list[tuple[int, int, int]] = []  # (start, end, page)
    current: list[_Unit] = []

    def close() -> None:
        if current:
            spans.append((current[0].start, current[-1].end, current[0].page))

    for unit in _units(body, max_chars):
        if current:
            size = current[-1].end - current[0].start
            new_page = unit.page != current[-1].page
            if new_page or (unit.heading and size >= min_chars):
                close()
                current = []
            elif unit.end - current[0].start > max_chars and not all(u.heading for u in current):
                # (A heading is never left alone at the end of a passage: it goes
                # with its first paragraph even if that overflows a little.)
                close()
                # Carry the last sentences over, unless the unit is a heading
                # (a new section) or the tail would be the whole passage.
                tail: list[_Unit] = []
                for prev in reversed(current[1:]):
                    if prev.heading or unit.end - prev.start > max_chars:
                        break
                    if current[-1].end - prev.start > overlap_chars:
                        break
                    tail.insert(0, prev)
                current = tail
        current.append(unit)
    close()
    return [
        Chunk(position=i, start=s, end=e, page=page if paged else None, text=body[s:e])
        for i, (s, e, page) in enumerate(spans)
    ]


_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+]|\d{1,3}[.)])\s+", re.MULTILINE)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentences of a passage: headings skipped, list items and paragraphs never joined."""
    spans: list[tuple[int, int]] = []
    for start, end, heading in _blocks(text, 0, len(text)):
        if heading:
            continue
        items = [m.span() for m in _LIST_ITEM.finditer(text, start, end)]
        # (from, to) pieces: the text between list markers, without the markers
        pieces = []
        cursor = start
        for marker_start, marker_end in items:
            pieces.append((cursor, marker_start))
            cursor = marker_end
        pieces.append((cursor, end))
        for a, b in pieces:
            spans.extend(split_sentences(text, a, b))
    return spans


def embedding_text(title: str, chunk_text: str) -> str:
    """What gets embedded and word-indexed for a passage: its document's title, then it."""
    if not title or chunk_text.lstrip("# ").startswith(title):
        return chunk_text
    return f"{title}\n{chunk_text}"
