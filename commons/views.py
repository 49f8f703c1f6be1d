"""What the web pages show, as plain data: the JSON twin of each page.

Each function reads the core and returns a dict of JSON values; a web page
renders it through an autoescaping template, and the same dict is served as
JSON. Nothing here marks text as safe or builds HTML: every title, body and
name is a stranger's text and stays text.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from commons.display import author_label, fmt_date, short_id, short_key
from commons.model.errors import CommonsError, InvalidObject, NotFound
from commons.model.objects import Document, verify
from commons.service import summary
from commons.storage.store import Stored

if TYPE_CHECKING:
    from commons.api import LocalApi
    from commons.service import Commons

JSON = dict[str, Any]
RECENT_DOCUMENTS = 20
TOP_TAGS = 40
SEARCH_RESULTS = 20
LISTING_LIMIT = 200
# The most body text one page shows (a window around the cited passage): a 1 MB
# document must not make a 1 MB page for a phone.
BODY_WINDOW_CHARS = 10_000
# FTS5 snippet markers: control characters no document or title may hold.
MARK_OPEN = "\x02"
MARK_CLOSE = "\x03"
_CITE = re.compile(r"\[(\d{1,3})\]")


def _doc_item(stored: Stored, names: dict[bytes, str]) -> JSON:
    out = summary(stored, names)
    out["author_label"] = author_label(out["author"], out["author_name"])
    out["date"] = fmt_date(out["created_at"])
    out["short_id"] = short_id(out["id"])
    return out


def library_view(commons: Commons, *, name: str | None) -> JSON:
    """The front page: what this commons is, how much it holds, recent documents, tags."""
    names = commons.store.display_names()
    documents = commons.store.count("document")
    recent = commons.store.objects(kind="document")[-RECENT_DOCUMENTS:]
    rows = commons.store.query(
        "SELECT t.tag, count(*) AS n FROM object_tags t JOIN heads h ON h.id = t.id"
        " WHERE h.kind = 'document' GROUP BY t.tag ORDER BY n DESC, t.tag LIMIT ?",
        (TOP_TAGS,),
    )
    return {
        "name": name or commons.name_of(commons.public_key),
        "public_key": commons.public_key.hex(),
        "documents": documents,
        "authors": len(commons.store.authors()),
        "recent": [_doc_item(s, names) for s in reversed(recent)],
        "tags": [{"tag": str(tag), "count": int(n)} for tag, n in rows],
    }


def cite_segments(answer: str, numbers: set[int]) -> list[JSON]:
    """The answer as segments [{"text", "cite"}], `cite` the number of a [n] marker
    that points at a citation (None for plain text), so a page can link it."""
    segments: list[JSON] = []
    last = 0
    for match in _CITE.finditer(answer):
        n = int(match.group(1))
        if n not in numbers:
            continue
        if match.start() > last:
            segments.append({"text": answer[last:match.start()], "cite": None})
        segments.append({"text": match.group(0), "cite": n})
        last = match.end()
    if last < len(answer):
        segments.append({"text": answer[last:], "cite": None})
    return segments


def ask_view(api: LocalApi, question: str, *, llm: dict[str, str | None]) -> JSON:
    """The same answer `commons ask` gives (through the same API call), with links."""
    result = api.ask(question, llm=llm.get("llm"), model=llm.get("model"),
                     gguf=llm.get("gguf"), llm_key=llm.get("llm_key"))
    for c in result["citations"]:
        c["author_label"] = author_label(c["author"], c["author_name"])
        c["short_id"] = short_id(c["id"])
    result["question"] = question
    result["segments"] = cite_segments(result["answer"], {c["n"] for c in result["citations"]})
    return result


def split_snippet(text: str) -> list[JSON]:
    """An FTS5 snippet with markers as segments: [{"text", "mark"}], for escaping."""
    segments: list[JSON] = []
    marked = False
    buffer = ""
    for ch in text:
        if ch in (MARK_OPEN, MARK_CLOSE):
            if buffer:
                segments.append({"text": buffer, "mark": marked})
            buffer = ""
            marked = ch == MARK_OPEN
        else:
            buffer += ch
    if buffer:
        segments.append({"text": buffer, "mark": marked})
    return segments


def search_view(commons: Commons, query: str) -> JSON:
    """Full-text (FTS5, BM25) matches with snippets, best first."""
    query = " ".join(query.split())
    out: JSON = {"query": query, "results": []}
    if not query:
        return out
    index = commons.search_index(dense=False)  # words only: never wait for vectors
    names = commons.store.display_names()
    for hit in index.words.snippets(query, SEARCH_RESULTS, mark_open=MARK_OPEN,
                                    mark_close=MARK_CLOSE):
        try:
            stored = commons.store.get_stored(hit.doc)
        except CommonsError:
            continue
        item = _doc_item(stored, names)
        item.update(start=hit.start, end=hit.end, snippet=split_snippet(hit.snippet))
        out["results"].append(item)
    return out


def _signature(stored: Stored, now: int) -> JSON:
    try:
        verify(stored.obj, now=max(now, stored.obj.created_at))
    except InvalidObject as exc:  # the store verified it; a changed file would show here
        return {"verified": False, "reason": str(exc)}
    return {"verified": True, "reason": None}


def _versions(commons: Commons, stored: Stored) -> list[JSON]:
    """Every stored version of a document by its author, newest first."""
    docs = commons.store.objects(kind="document", author=stored.obj.author, heads_only=False)
    by_id = {s.obj.id: s for s in docs}
    newer: dict[bytes, bytes] = {}
    for s in docs:
        content = s.obj.content
        if isinstance(content, Document) and content.replaces is not None:
            newer[content.replaces] = s.obj.id
    first = stored.obj.id
    seen = {first}
    while True:  # back to the first version
        previous = by_id[first].obj.content if first in by_id else None
        if not isinstance(previous, Document) or previous.replaces not in by_id:
            break
        first = previous.replaces
        if first in seen:
            break
        seen.add(first)
    chain = [first]
    while chain[-1] in newer and newer[chain[-1]] not in chain:
        chain.append(newer[chain[-1]])
    if len(chain) < 2:
        return []
    return [
        {"id": oid.hex(), "short_id": short_id(oid.hex()),
         "date": fmt_date(by_id[oid].obj.created_at), "current": oid == stored.obj.id}
        for oid in reversed(chain) if oid in by_id
    ]


def _window(body: str, start: int | None, end: int | None, offset: int | None) -> JSON:
    """The part of the body to show, split around the highlighted passage."""
    size = len(body)
    if start is not None and end is not None and 0 <= start < end <= size:
        low = max(0, min(start - BODY_WINDOW_CHARS // 4, size - BODY_WINDOW_CHARS))
        high = min(size, max(end, low + BODY_WINDOW_CHARS))
        end = min(end, high)
        parts: JSON = {"before": body[low:start], "passage": body[start:end],
                       "after": body[end:high]}
    else:
        low = max(0, min(offset or 0, size))
        high = min(size, low + BODY_WINDOW_CHARS)
        parts = {"before": body[low:high], "passage": "", "after": ""}
    parts.update(shown_from=low, shown_to=high, length=size,
                 previous=max(0, low - BODY_WINDOW_CHARS) if low > 0 else None,
                 next=high if high < size else None)
    return parts


def document_view(
    commons: Commons, prefix: str, *, now: int, start: int | None = None,
    end: int | None = None, offset: int | None = None,
) -> JSON:
    """A document, its metadata, signature status, versions, and a highlighted passage."""
    stored = commons.show(prefix)
    content = stored.obj.content
    if not isinstance(content, Document):
        raise NotFound(f"{short_id(stored.obj.id.hex())} is a {stored.obj.kind}, not a document")
    out = _doc_item(stored, commons.store.display_names())
    out["signature"] = _signature(stored, now)
    out["versions"] = _versions(commons, stored)
    out["current"] = bool(
        commons.store.query("SELECT 1 FROM heads WHERE id = ?", (stored.obj.id,)))
    out["body"] = _window(content.body, start, end, offset)
    return out


def listing_view(commons: Commons, *, author: str | None = None, tag: str | None = None) -> JSON:
    """An author's or a tag's documents, newest first."""
    names = commons.store.display_names()
    key: bytes | None = None
    if author is not None:
        key = commons.resolve_author(author)
    docs = commons.store.objects(kind="document", author=key,
                                 tag=tag.strip().lower() if tag is not None else None)
    out: JSON = {
        "documents": [_doc_item(s, names) for s in reversed(docs[-LISTING_LIMIT:])],
        "total": len(docs),
    }
    if key is not None:
        out.update(author=key.hex(), author_name=names.get(key), short_key=short_key(key.hex()),
                   author_label=author_label(key.hex(), names.get(key)))
    if tag is not None:
        out["tag"] = tag.strip().lower()
    return out

