"""View models and formatting for the terminal UI, with no textual in sight.

Everything here is a pure function or a frozen dataclass built from the plain
JSON values that `commons.api` returns, so the rules of what the screens show
(labels, filters, which part of a document a citation highlights) are tested
without starting an app. A test imports this module in a fresh interpreter
and checks that textual was not loaded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from commons.answers.extractive import ABSTAIN_TEXT
from commons.display import author_label, fmt_date, short_id, short_key
from sync.display import peer_state

SCREENS = ("library", "ask", "contribute", "peers", "identity")


# -- small formatters ---------------------------------------------------------


def fmt_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%H:%M:%S")


def fmt_ago(then: float | None, now: float) -> str:
    """'never', 'just now', '42s ago', '5m ago', '3h ago', '2d ago'."""
    if then is None or then <= 0:
        return "never"
    seconds = int(now - then)
    if seconds < 2:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


_MARKUP = re.compile(r"(?m)^\s{0,3}(?:#{1,6}\s+|[-*+]\s+|>\s?)|\*\*|__|`")


def excerpt(passage: str, width: int) -> str:
    """A passage as one plain line: no heading, list or emphasis marks."""
    return clip(_MARKUP.sub("", passage), width)


def display_path(path: str | Path) -> str:
    """A path with the user's home directory shown as ~."""
    text = str(path)
    home = os.path.expanduser("~")
    if home not in ("", "/", "~") and (text == home or text.startswith(home + os.sep)):
        return "~" + text[len(home):]
    return text


def clip(text: str, width: int) -> str:
    """Cut text to `width` cells, marking the cut with an ellipsis."""
    text = " ".join(text.split())
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def origin_short(origin: str) -> str:
    """The origin in a few cells: here, seed, import, or the peer's host."""
    if origin == "local":
        return "here"
    if origin.startswith("import:"):
        return "import"
    if origin.startswith(("http://", "https://")):
        return urlsplit(origin).hostname or origin
    return origin


def origin_label(origin: str) -> str:
    """Where an object came from, in words: added here, seed, import, or which peer."""
    if origin == "local":
        return "added here"
    if origin == "seed":
        return "seed"
    if origin.startswith("import:"):
        return f"import {origin.split(':', 1)[1]}"
    if origin.startswith(("http://", "https://")):
        parts = urlsplit(origin)
        return f"from {parts.netloc or origin}"
    return origin


# -- documents ----------------------------------------------------------------


class Badge(Enum):
    """The signature badge of a document, as re-verified by the UI."""

    PENDING = "…"
    VERIFIED = "✓"
    INVALID = "✗"

    @property
    def words(self) -> str:
        return {
            Badge.PENDING: "checking signature…",
            Badge.VERIFIED: "signature verified",
            Badge.INVALID: "signature does NOT verify",
        }[self]


@dataclass(frozen=True)
class DocRow:
    """One document as the Library lists it."""

    id: str
    title: str
    author: str
    author_name: str | None
    tags: tuple[str, ...]
    created_at: int
    origin: str
    received_at: int
    licence: str = ""
    media_type: str = "text/markdown"
    replaces: str | None = None
    size: int = 0

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> DocRow:
        return cls(
            id=str(item["id"]),
            title=str(item.get("title") or "(untitled)"),
            author=str(item["author"]),
            author_name=item.get("author_name"),
            tags=tuple(item.get("tags") or ()),
            created_at=int(item.get("created_at") or 0),
            origin=str(item.get("origin") or "?"),
            received_at=int(item.get("received_at") or 0),
            licence=str(item.get("licence") or ""),
            media_type=str(item.get("media_type") or "text/markdown"),
            replaces=item.get("replaces"),
            size=int(item.get("size") or 0),
        )

    @property
    def author_label(self) -> str:
        return author_label(self.author, self.author_name)


@dataclass(frozen=True)
class LibraryFilter:
    """What the Library shows: free words plus an author and a tag."""

    words: tuple[str, ...] = ()
    author: str | None = None  # a key, key prefix or display name
    tag: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.words or self.author or self.tag)


def filter_tokens(text: str) -> list[str]:
    """Words of the filter box; "double quotes" keep a phrase (or a name) together,
    also after a prefix: author:"river library"."""
    return [(m.group(1) or "") + m.group(2).replace('"', "") for m in _TOKEN.finditer(text)]


_TOKEN = re.compile(r'(\w+:)?("[^"]*"?|[^\s"]+)')


def parse_filter(text: str, *, author: str | None = None, tag: str | None = None) -> LibraryFilter:
    """Read 'author:NAME tag:TAG words' typed in the filter box.

    Chosen author and tag (from the pickers) win over typed ones only when the
    typed ones are absent, so a typed filter is never silently ignored.
    """
    words: list[str] = []
    for token in filter_tokens(text):
        key, sep, value = token.partition(":")
        if sep and value and key.lower() in ("author", "by", "a"):
            author = value
        elif sep and value and key.lower() in ("tag", "t"):
            tag = value
        elif token.startswith("#") and len(token) > 1:
            tag = token[1:]
        elif token.strip():
            words.append(token.casefold())
    return LibraryFilter(tuple(words), author, tag.lower() if tag else None)


def matches(row: DocRow, f: LibraryFilter, text_hits: frozenset[str] = frozenset()) -> bool:
    """Whether `row` passes `f`: author and tag by prefix, any case; words in its title,
    author, tags or origin, or (`text_hits`: ids a full-text search found) its text."""
    if f.tag and not any(t.startswith(f.tag) for t in row.tags):
        return False
    if f.author:
        needle = f.author.casefold()
        by_key = row.author.startswith(needle)
        name = (row.author_name or "").casefold()
        by_name = name.startswith(needle) or any(w.startswith(needle) for w in name.split())
        if not (by_key or by_name):
            return False
    if row.id in text_hits:
        return True
    haystack = " ".join(
        [row.title, row.author_name or "", row.author[:8], " ".join(row.tags), row.origin]
    ).casefold()
    return all(word in haystack for word in f.words)


def filter_rows(
    rows: Iterable[DocRow], f: LibraryFilter, text_hits: frozenset[str] = frozenset()
) -> list[DocRow]:
    return [row for row in rows if matches(row, f, text_hits)]


def newest_first(rows: Iterable[DocRow]) -> list[DocRow]:
    return sorted(rows, key=lambda r: (-r.created_at, r.title.casefold(), r.id))


def authors_of(rows: Iterable[DocRow]) -> list[tuple[str, str]]:
    """(label, key) of every author, by name, for the author picker."""
    seen: dict[str, str] = {}
    for row in rows:
        seen[row.author] = row.author_label
    return sorted(((label, key) for key, label in seen.items()), key=lambda p: p[0].casefold())


def tags_of(rows: Iterable[DocRow]) -> list[str]:
    return sorted({tag for row in rows for tag in row.tags})


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int


def library_columns(total_width: int) -> list[Column]:
    """Column widths that fit the terminal; the title takes what is left."""
    if total_width >= 110:
        fixed = [("author", "Author", 24), ("tags", "Tags", 22), ("date", "Date", 10),
                 ("origin", "Origin", 16)]
    else:
        fixed = [("author", "Author", 15), ("tags", "Tags", 10), ("date", "Date", 10),
                 ("origin", "Origin", 9)]  # origin_short fits 9: here, seed, 127.0.0.1
    # DataTable pads every column by one cell on each side; the badge is 1 wide,
    # and one cell is kept for the scroll bar.
    used = 1 + sum(w for _, _, w in fixed) + 2 * (len(fixed) + 2) + 1
    title = max(total_width - used, 12)
    return [Column("badge", " ", 1), Column("title", "Title", title)] + [
        Column(k, label, w) for k, label, w in fixed
    ]


def author_cell(author: str, name: str | None, width: int) -> str:
    """Display name and short key in `width` cells; the key is never cut."""
    key = short_key(author) if width >= 20 else author[:6]
    return f"{clip(name or '?', max(width - len(key) - 1, 1))} {key}"


def library_cells(row: DocRow, badge: Badge, columns: Sequence[Column]) -> list[str]:
    out = []
    for c in columns:
        if c.key == "author":
            out.append(author_cell(row.author, row.author_name, c.width))
            continue
        value = {
            "badge": badge.value,
            "title": row.title,
            "tags": ", ".join(row.tags) or "-",
            "date": fmt_date(row.created_at),
            "origin": origin_label(row.origin) if c.width >= 16 else origin_short(row.origin),
        }[c.key]
        out.append(clip(value, c.width))
    return out


def provenance(row: DocRow, badge: Badge, *, reason: str | None = None) -> list[tuple[str, str]]:
    """(label, value) lines shown beside a document."""
    lines = [
        ("signature", badge.words + (f": {reason}" if reason else "")),
        ("author", row.author_name or "(no profile)"),
        ("key", row.author),
        ("written", fmt_date(row.created_at)),
        ("origin", origin_label(row.origin)),
        ("received", fmt_date(row.received_at)),
        ("tags", ", ".join(row.tags) or "-"),
        ("licence", row.licence or "-"),
        ("id", row.id),
    ]
    if row.replaces:
        lines.append(("replaces", short_id(row.replaces)))
    return lines


# -- reading a document at a passage ------------------------------------------


@dataclass(frozen=True)
class Segment:
    """A run of a document's body; `cited` runs are highlighted."""

    start: int
    end: int
    text: str
    cited: bool = False


_FENCE = re.compile(r"^\s*(```|~~~)")


def blocks(body: str) -> list[tuple[int, int]]:
    """Character ranges of paragraphs (split at blank lines, never inside a code fence)."""
    out: list[tuple[int, int]] = []
    start: int | None = None
    in_fence = False
    pos = 0
    for line in body.splitlines(keepends=True):
        blank = not line.strip()
        if _FENCE.match(line):
            in_fence = not in_fence
        if blank and not in_fence:
            if start is not None:
                out.append((start, pos))
                start = None
        elif start is None:
            start = pos
        pos += len(line)
    if start is not None:
        out.append((start, pos))
    return out


def segments(body: str, span: tuple[int, int] | None = None) -> list[Segment]:
    """The body cut into at most three runs: before, the cited passage, after.

    The cited run is widened to whole paragraphs so the Markdown around it still
    renders; the runs before and after stay whole so one widget shows each.
    """
    if span is None or not body:
        return [Segment(0, len(body), body)]
    lo, hi = max(0, min(span)), min(len(body), max(span))
    if lo >= hi:
        return [Segment(0, len(body), body)]
    start, end = lo, hi
    for b_start, b_end in blocks(body):
        if b_end > lo and b_start < hi:
            start = min(start, b_start)
            end = max(end, b_end)
    out = []
    if body[:start].strip():
        out.append(Segment(0, start, body[:start]))
    out.append(Segment(start, end, body[start:end], cited=True))
    if body[end:].strip():
        out.append(Segment(end, len(body), body[end:]))
    return out


def locate_passage(body: str, passage: str) -> tuple[int, int] | None:
    """Where a passage sits in the body, when its offsets are not known.

    Tries the exact text, then its first words with any run of whitespace.
    """
    passage = passage.strip()
    if not passage:
        return None
    at = body.find(passage)
    if at >= 0:
        return at, at + len(passage)
    words = passage.split()[:12]
    if not words:
        return None
    pattern = r"\s+".join(re.escape(w) for w in words)
    match = re.search(pattern, body)
    if match is None:
        return None
    return match.start(), min(len(body), match.start() + len(passage))


# -- answers ------------------------------------------------------------------


@dataclass(frozen=True)
class CitationView:
    n: int
    id: str
    title: str
    author: str
    author_name: str | None
    origin: str
    passage: str
    score: float | None = None
    page: int | None = None
    start: int | None = None
    end: int | None = None

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> CitationView:
        def opt_int(name: str) -> int | None:
            value = item.get(name)
            return int(value) if isinstance(value, (int, float)) else None

        score = item.get("score")
        return cls(
            n=int(item["n"]),
            id=str(item["id"]),
            title=str(item.get("title") or "(untitled)"),
            author=str(item.get("author") or ""),
            author_name=item.get("author_name"),
            origin=str(item.get("origin") or "?"),
            passage=str(item.get("passage") or ""),
            score=float(score) if isinstance(score, (int, float)) else None,
            page=opt_int("page"),
            start=opt_int("start"),
            end=opt_int("end"),
        )

    @property
    def span(self) -> tuple[int, int] | None:
        if self.start is None or self.end is None or self.end <= self.start:
            return None
        return self.start, self.end

    @property
    def label(self) -> str:
        page = f", p. {self.page}" if self.page else ""
        return (
            f"[{self.n}] {self.title}{page} — {author_label(self.author, self.author_name)}"
            f" · {origin_label(self.origin)}"
        )


@dataclass(frozen=True)
class AnswerView:
    question: str
    answer: str
    citations: tuple[CitationView, ...] = ()
    abstained: bool = False
    index_note: str | None = None  # said when the dense index is still filling in
    model: str | None = None  # the language model that wrote it; None: quoted
    set_aside: tuple[str, str] | None = None  # (model, why) a model's answer was not shown

    @classmethod
    def from_json(cls, question: str, data: Mapping[str, Any]) -> AnswerView:
        citations = tuple(CitationView.from_json(c) for c in data.get("citations") or ())
        abstained = bool(data.get("abstained")) or not str(data.get("answer") or "").strip()
        note = (data.get("index") or {}).get("note")
        model = data.get("model")
        aside = data.get("set_aside")
        set_aside = (
            (str(aside.get("model")), str(aside.get("reason"))) if isinstance(aside, dict)
            else None
        )
        return cls(question, str(data.get("answer") or ""), citations, abstained,
                   str(note) if note else None, str(model) if model else None, set_aside)

    def citation(self, n: int) -> CitationView | None:
        return next((c for c in self.citations if c.n == n), None)

    @property
    def text(self) -> str:
        """The answer as Markdown. Its words are the documents' (or a model's): escaped,
        so a stranger's sentence cannot become a link, a heading or a list."""
        note = f"\n\n*({markdown_escape(self.index_note)})*" if self.index_note else ""
        if self.abstained:
            return f"**{ABSTAIN_TEXT}**\n\nOr add a document that covers it (F4 Contribute).{note}"
        said = ""
        if self.set_aside:
            said = (f"\n\n*The language model {markdown_escape(self.set_aside[0])} also"
                    f" answered, but its answer was set aside:"
                    f" {markdown_escape(self.set_aside[1])}. The answer above is quoted from"
                    " the sources.*")
        if self.model:
            said += (f"\n\n*Written by the language model {markdown_escape(self.model)} from"
                     " these sources; check them.*")
        # A bare [n] is no link when no "[" of the text is left to define one.
        answer = _ESCAPED_MARKER.sub(r"[\1]", markdown_escape(self.answer))
        return answer + said + note


# Not the backtick: a code span is inert, and guides quote commands in them.
_MARKDOWN_SPECIAL = re.compile(r"([\\*_{}\[\]()<>#+\-!|~&])")
_ESCAPED_MARKER = re.compile(r"\\\[(\d+)\\\]")
_LINE_NUMBER = re.compile(r"^(\s*\d+)([.)])", re.MULTILINE)


def markdown_escape(text: str) -> str:
    """Text that Markdown shows as it is (code spans aside): no emphasis, links, HTML,
    headings or lists."""
    return _LINE_NUMBER.sub(r"\1\\\2", _MARKDOWN_SPECIAL.sub(r"\\\1", text))


@dataclass
class History:
    """Questions asked in this session, newest first, each once."""

    answers: list[AnswerView] = field(default_factory=list)

    def add(self, answer: AnswerView) -> None:
        self.answers = [a for a in self.answers if a.question != answer.question]
        self.answers.insert(0, answer)

    def get(self, question: str) -> AnswerView | None:
        return next((a for a in self.answers if a.question == question), None)


# -- contributing -------------------------------------------------------------


def parse_tags(text: str) -> list[str]:
    """Tags typed as 'a, b c' (commas or spaces), lower-cased, in order, each once."""
    out: list[str] = []
    for tag in re.split(r"[,\s]+", text.lower()):
        if tag and tag not in out:
            out.append(tag)
    return out


def complete_path(text: str) -> str | None:
    """The longest unambiguous completion of a typed path, or None.

    A directory completes with a trailing slash so the next Tab goes inside it.
    """
    if not text:
        return None
    expanded = os.path.expanduser(text)
    directory, _, partial = expanded.rpartition(os.sep)
    base = Path(directory or ("/" if expanded.startswith(os.sep) else "."))
    try:
        names = sorted(
            entry.name + (os.sep if entry.is_dir() else "")
            for entry in os.scandir(base)
            if entry.name.startswith(partial) and (partial.startswith(".") or entry.name[0] != ".")
        )
    except OSError:
        return None
    if not names:
        return None
    common = os.path.commonprefix(names)
    if len(common) <= len(partial):
        return None
    return text + common[len(partial):]


def chunk_label(n: int, text: str, width: int) -> str:
    return f"{n:>3}  {clip(text, max(width - 5, 10))}"


# -- peers --------------------------------------------------------------------


@dataclass(frozen=True)
class PeerRow:
    url: str
    name: str | None
    last_seen: float | None
    state: str  # in the words of `commons peers ls` (sync.display.peer_state)
    sent: int
    received: int
    failures: int = 0
    mirror: bool = False
    discovered: bool = False  # announced itself on the LAN; not yet proven by key

    @classmethod
    def from_info(cls, info: Any) -> PeerRow:
        """From a sync PeerInfo or its JSON form."""

        def get(name: str, default: Any = None) -> Any:
            if isinstance(info, Mapping):
                return info.get(name, default)
            return getattr(info, name, default)

        fields = info if isinstance(info, Mapping) else info.to_json()
        return cls(
            url=str(get("url", "?")),
            name=get("name"),
            last_seen=get("last_seen"),
            state=peer_state(fields),
            sent=int(get("sent", 0) or 0),
            received=int(get("received", 0) or 0),
            failures=int(get("failures", 0) or 0),
            mirror=bool(get("mirror", False)),
            discovered=get("source") == "discovered",
        )

    def cells(self, now: float) -> list[str]:
        name = (self.name or "-") + (" (mirror)" if self.mirror else "") + (
            " (found on LAN)" if self.discovered else "")
        return [
            self.url,
            name,
            fmt_ago(self.last_seen, now),
            self.state,
            str(self.sent),
            str(self.received),
        ]


PEER_COLUMNS = ("Address", "Name", "Last seen", "State", "Sent", "Received")


def sync_summary(results: Any) -> str:
    """'synced with 2 peers: 3 fetched, 1 pushed, 1 failed' from sync_now's results."""
    if not isinstance(results, (list, tuple)):
        return "synced"
    if not results:
        return "no peer is due for a sync; add one, or wait for the back-off to pass"

    def get(r: Any, name: str) -> Any:
        return r.get(name) if isinstance(r, Mapping) else getattr(r, name, None)

    fetched = sum(int(get(r, "fetched") or 0) for r in results)
    pushed = sum(int(get(r, "pushed") or 0) for r in results)
    failed = sum(1 for r in results if get(r, "error"))
    peers = f"{len(results)} peer{'s' if len(results) != 1 else ''}"
    text = f"synced with {peers}: {fetched} fetched, {pushed} pushed"
    return text + (f", {failed} failed (see the gossip log)" if failed else "")


def fmt_duration(seconds: float) -> str:
    """'16 s', '3 min', '2 h 5 min': a rough length of time, for an estimate."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def index_progress(status: Mapping[str, Any]) -> str:
    """The node's search index in one line, from its /status: 'dense index: 120 of
    342 documents, 14/s, about 16 s left', or just the count once complete."""
    dense = status.get("dense_index")
    if not isinstance(dense, Mapping):
        state = status.get("index")
        if state == "warming":
            return "search index: opening (documents are searchable by words meanwhile)"
        if state == "failed":
            return "search index: did not open (see the log); searching by words still works"
        return "search index: not kept by this node"
    documents, embedded = int(dense.get("documents", 0)), int(dense.get("dense", 0))
    if dense.get("complete") or embedded >= documents:
        return f"dense index: {documents} documents"
    text = f"dense index: {embedded} of {documents} documents"
    rate = float(dense.get("rate") or 0.0)
    if rate <= 0:
        return text + ", starting"
    return (f"{text}, {rate:.3g}/s, about {fmt_duration((documents - embedded) / rate)}"
            " left")


# -- help ---------------------------------------------------------------------

KEYS: tuple[tuple[str, str, str], ...] = (
    ("everywhere", "F1 or ?", "this help"),
    ("everywhere", "F2 … F6", "Library, Ask, Contribute, Peers, Identity"),
    ("everywhere", "ctrl+p", "command palette: every action by name"),
    ("everywhere", "tab", "next field or list"),
    ("everywhere", "ctrl+q", "quit"),
    ("Library", "type", "words in titles and text; author:NAME, tag:TAG, \"a phrase\""),
    ("Library", "up / down", "choose a document"),
    ("Library", "enter", "open it, rendered, with its provenance"),
    ("Library", "escape", "clear the filters"),
    ("Library", "a / t", "only this author / this tag (in the list)"),
    ("Library", "delete", "retract the chosen document (yours only)"),
    ("Document", "escape", "back"),
    ("Document", "c / p", "to the cited passage / hide the provenance"),
    ("Ask", "enter", "ask the question in the box"),
    ("Ask", "up / down", "earlier questions (in the box)"),
    ("Ask", "1 … 9", "open citation n at its passage"),
    ("Ask", "escape", "back to the question box"),
    ("Ask", "ctrl+l", "forget the questions kept on this machine"),
    ("Contribute", "ctrl+o", "pick a file"),
    ("Contribute", "right", "accept the path completion"),
    ("Contribute", "ctrl+r", "preview the passages"),
    ("Contribute", "ctrl+s", "sign and publish what \"Will sign\" shows"),
    ("Peers", "enter", "add the peer typed in the box"),
    ("Peers", "delete", "remove the chosen peer"),
    ("Peers", "ctrl+s", "sync now"),
    ("Identity", "enter", "open your document"),
    ("Identity", "delete", "retract it"),
    ("Identity", "n", "change your display name"),
)


def format_event(event: Any) -> str:
    """One line of the gossip log from a sync NodeEvent(time, kind, message, peer)."""
    when = fmt_time(getattr(event, "time", None))
    kind = str(getattr(event, "kind", "event"))
    peer = getattr(event, "peer", None)
    message = str(getattr(event, "message", ""))
    where = f" {peer}" if peer and peer not in message else ""
    return f"{when} {kind:<8}{where} {message}".rstrip()
