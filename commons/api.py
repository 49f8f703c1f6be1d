"""What a user can ask of a home, in plain JSON values.

`LocalApi` runs each call on a `Commons` this process owns. While a node owns
the home, the CLI uses a client with the same methods that sends each call to
the node's local API, which runs it on its own `LocalApi`. So there is one
implementation of every action, whichever process owns the home.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from commons.ingest import Extracted
from commons.service import Commons, summary
from commons.storage.store import PutResult

log = logging.getLogger(__name__)

JSON = dict[str, Any]


class CommonsApi(Protocol):
    def whoami(self) -> JSON: ...

    def add(
        self,
        extracted: Extracted,
        *,
        title: str | None,
        tags: list[str],
        licence: str | None,
        replaces: str | None,
    ) -> JSON: ...

    def documents(self, *, author: str | None, tag: str | None) -> list[JSON]: ...

    def show(self, prefix: str) -> JSON: ...

    def search(self, query: str, *, limit: int = 20, author: str | None = None,
               tag: str | None = None) -> list[JSON]: ...

    def set_name(self, name: str) -> JSON: ...

    def retract(self, prefix: str, reason: str | None) -> JSON: ...

    def export(self, path: str, authors: list[str]) -> JSON: ...

    def import_bundle(self, path: str) -> JSON: ...

    def ask(
        self,
        question: str,
        *,
        k: int = 8,
        authors: list[str] = [],  # noqa: B006 (never mutated; JSON-shaped like the wire)
        tags: list[str] = [],  # noqa: B006
        llm: str | None = None,
        model: str | None = None,
        gguf: str | None = None,
        llm_key: str | None = None,
    ) -> JSON: ...

    def reindex(self) -> JSON: ...

    def block(self, author: str, reason: str | None) -> JSON: ...

    def unblock(self, author: str) -> JSON: ...

    def blocked(self) -> list[JSON]: ...


class LocalApi:
    """The API over a home this process owns."""

    def __init__(self, commons: Commons) -> None:
        self.commons = commons
        self._deferred = 0

    @contextmanager
    def deferred_indexing(self) -> Iterator[None]:
        """Index what is added inside the block in one batched pass when it ends.

        Embedding many documents at once is faster than one at a time; `commons add`
        with many files uses this. Outside it, `add` returns once the document is
        searchable.
        """
        index = self.commons.search_index(dense=False)
        self._deferred += 1
        with index.held():  # else each add's event would wake the worker to index it alone
            try:
                yield
            finally:
                self._deferred -= 1
            # Not on an error or Ctrl-C: what was stored stays stored and searchable
            # by words, and its vectors are made on the next start.
            if not self._deferred:
                index.sync()

    def whoami(self) -> JSON:
        return self.commons.whoami()

    def add(
        self,
        extracted: Extracted,
        *,
        title: str | None,
        tags: list[str],
        licence: str | None,
        replaces: str | None,
    ) -> JSON:
        # Open it first, so the add's event reaches it; never wait for a backlog.
        index = self.commons.search_index(dense=False, catch_up=False)
        obj, result = self.commons.add_document(
            title=title or extracted.title,
            body=extracted.body,
            media_type=extracted.media_type,
            tags=tags,
            licence=licence,
            replaces=replaces,
        )
        index.index_words_now([obj.id])  # searchable by words when add returns
        if not self._deferred and result is PutResult.ADDED:
            try:
                index.embed_now([obj.id])  # and by meaning, ahead of any backlog from peers
            except Exception:  # stored and searchable by words: its vectors follow behind
                log.warning("embedding %s failed; the index worker tries again",
                            obj.id.hex()[:12], exc_info=True)
        stored = self.commons.store.get_stored(obj.id)
        out = summary(stored, self.commons.store.display_names())
        out["status"] = "added" if result is PutResult.ADDED else "duplicate"
        return out

    def documents(self, *, author: str | None, tag: str | None) -> list[JSON]:
        names = self.commons.store.display_names()
        return [summary(s, names) for s in self.commons.documents(author=author, tag=tag)]

    def show(self, prefix: str) -> JSON:
        stored = self.commons.show(prefix)
        out = summary(stored, self.commons.store.display_names())
        out["object"] = stored.obj.to_json()
        out["replaced_by"] = [oid.hex() for oid in self.commons.replaced_by(stored.obj.id)]
        return out

    def search(self, query: str, *, limit: int = 20, author: str | None = None,
               tag: str | None = None) -> list[JSON]:
        """Documents whose words match, best first; each summary has a "snippet"."""
        names = self.commons.store.display_names()
        out = []
        for stored, snippet in self.commons.search(query, limit=limit, author=author, tag=tag):
            item = summary(stored, names)
            item["snippet"] = snippet
            out.append(item)
        return out

    def set_name(self, name: str) -> JSON:
        """Sign a new profile with this display name."""
        obj = self.commons.set_name(name)
        return {"id": obj.id.hex(), **self.commons.whoami()}

    def retract(self, prefix: str, reason: str | None) -> JSON:
        obj = self.commons.retract(prefix, reason)
        return {"id": obj.id.hex(), "kind": obj.kind, "target": obj.to_json()["target"]}

    def export(self, path: str, authors: list[str]) -> JSON:
        count = self.commons.export(Path(path), authors=authors)
        return {"path": path, "objects": count}

    def import_bundle(self, path: str) -> JSON:
        return self.commons.import_bundle(Path(path)).to_json()

    def ask(
        self,
        question: str,
        *,
        k: int = 8,
        authors: list[str] = [],  # noqa: B006
        tags: list[str] = [],  # noqa: B006
        llm: str | None = None,
        model: str | None = None,
        gguf: str | None = None,
        llm_key: str | None = None,
    ) -> JSON:
        """{"answer", "citations": [{n, id, title, author, author_name, origin, passage,
        score, page, start, end}], "abstained", "index": {documents, dense, complete, rate,
        note}}; start/end are offsets in the body; `index.note` is the line to show when
        the answer comes from a partial dense index."""
        from commons.answers.generators import make_generator

        generator = make_generator(llm, model, gguf, api_key=llm_key)
        state = self.commons.index_state()  # what the answer can draw on
        answer = self.commons.ask(question, k=k, authors=authors, tags=tags, generator=generator)
        return {**answer.to_json(), "index": state.to_json()}

    def reindex(self) -> JSON:
        return self.commons.reindex()

    def block(self, author: str, reason: str | None) -> JSON:
        """Hide an author's objects (listings, answers, serving) and decline new ones."""
        return self.commons.block(author, reason)

    def unblock(self, author: str) -> JSON:
        return self.commons.unblock(author)

    def blocked(self) -> list[JSON]:
        return self.commons.blocked_authors()
