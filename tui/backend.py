"""What the screens ask of the commons, as blocking calls for thread workers.

The backend hides whether this process owns the home (a `LocalApi` over a
`Commons`, plus the node the app runs in its own event loop) or talks to the
node that owns it (a `RemoteApi` with the same methods). Every method here
may block on SQLite, Chroma, the embedding model or HTTP, so the screens call
them from `@work(thread=True)` workers only. No textual here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from commons.api import CommonsApi
from commons.ingest import Extracted, extract_file, extract_text
from commons.model.errors import CommonsError, InvalidObject
from commons.model.objects import parse, verify
from commons.remote import RemoteApi
from commons.search.chunking import chunk_text
from commons.service import Commons
from sync.api import RunningNode
from tui.core import AnswerView, Badge, DocRow, PeerRow
from tui.history import QuestionLog

log = logging.getLogger(__name__)

Clock = Callable[[], int]


@dataclass(frozen=True)
class DocumentView:
    row: DocRow
    body: str


@dataclass(frozen=True)
class Whoami:
    public_key: str
    name: str | None
    home: str
    through: str | None  # the node's URL when we talk to a node that owns the home


@dataclass(frozen=True)
class Published:
    row: DocRow
    status: str  # "added" | "duplicate"


class Backend:
    """One home, as the app sees it."""

    def __init__(
        self,
        api: CommonsApi,
        *,
        clock: Clock,
        home: Path,
        public_key: str,
        commons: Commons | None = None,
        node: RunningNode | None = None,
        remote_url: str | None = None,
        node_note: str | None = None,
        default_licence: str | None = None,
        fresh: bool = False,
        remember_listen: Callable[[str], None] | None = None,
    ) -> None:
        self.api = api
        self.clock = clock
        self.home = home
        self.public_key = public_key
        self.commons = commons
        self.node = node
        self.remote_url = remote_url
        # The node that owns the home, when it is another process (peers go through it).
        self.remote = api if isinstance(api, RemoteApi) else None
        # Why there is no node, shown on the Peers screen instead of a table.
        self.node_note = node_note
        # The licence the Contribute form starts with (the home's `licence` setting).
        self.default_licence = default_licence
        # The home was made by this launch: the app asks for a display name.
        self.fresh = fresh
        # Keeps the node's address in the home's config once it listens.
        self.remember_listen = remember_listen
        self.questions = QuestionLog(home)
        self._closers: list[Callable[[], None]] = []

    def close(self) -> None:
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception:  # closing must go on to release the home lock
                log.exception("closing %s failed", closer)
        self._closers.clear()
        if self.commons is not None:
            self.commons.close()

    def on_close(self, closer: Callable[[], None]) -> None:
        self._closers.append(closer)

    # -- change notification --------------------------------------------------

    def watch(self, callback: Callable[[], None]) -> bool:
        """Call `callback` (from any thread) after each store change.

        Returns False when changes cannot be watched (the home belongs to a
        node in another process), so the caller polls instead.
        """
        if self.commons is None:
            return False
        store = self.commons.store

        def listener(_event: object) -> None:
            callback()

        store.subscribe(listener)
        self.on_close(lambda: store.unsubscribe(listener))
        return True

    # -- reading --------------------------------------------------------------

    def whoami(self) -> Whoami:
        who = self.api.whoami()
        return Whoami(
            public_key=who["public_key"],
            name=who.get("name"),
            home=str(who.get("home") or self.home),
            through=self.remote_url,
        )

    def documents(self, *, author: str | None = None) -> list[DocRow]:
        return [DocRow.from_json(d) for d in self.api.documents(author=author, tag=None)]

    def document(self, doc_id: str) -> DocumentView:
        item = self.api.show(doc_id)
        return DocumentView(DocRow.from_json(item), str(item["object"].get("body", "")))

    def verify(self, doc_id: str) -> tuple[Badge, str | None]:
        """Check a stored document's id and signature again, here and now.

        Timestamps are judged as at the later of now and its arrival, so a clock
        set back after the fact does not turn a good signature red.
        """
        try:
            if self.commons is not None:
                stored = self.commons.store.get_stored(bytes.fromhex(doc_id))
                verify(stored.obj, now=max(self.clock(), stored.received_at))
            else:
                item = self.api.show(doc_id)
                parse(item["object"], now=max(self.clock(), int(item.get("received_at") or 0)))
        except InvalidObject as exc:
            return Badge.INVALID, str(exc)
        return Badge.VERIFIED, None

    # -- asking ---------------------------------------------------------------

    def ask(self, question: str, *, k: int = 8) -> AnswerView:
        result = self.api.ask(question=question, k=k, authors=[], tags=[])
        try:
            self.questions.add(question, result, asked_at=self.clock())
        except OSError as exc:  # the answer matters more than keeping it
            log.warning("cannot keep the question in %s: %s", self.questions.path, exc)
        return AnswerView.from_json(question, result)

    def asked(self) -> list[AnswerView]:
        """Questions asked before (kept in the home), newest first."""
        return [AnswerView.from_json(q, a) for q, a in self.questions.load()]

    def clear_asked(self) -> None:
        self.questions.clear()

    # -- finding --------------------------------------------------------------

    def search(self, text: str, *, limit: int = 200) -> dict[str, str]:
        """{document id: snippet} of documents whose words match `text`."""
        return {h["id"]: str(h.get("snippet", "")) for h in self.api.search(text, limit=limit)}

    # -- identity -------------------------------------------------------------

    def set_name(self, name: str) -> Whoami:
        self.api.set_name(name)
        return self.whoami()

    def node_listening(self) -> None:
        """Called once the app's node listens: remember where, if asked to."""
        if self.node is None or self.remember_listen is None:
            return
        host, port = getattr(self.node, "host", None), getattr(self.node, "port", None)
        if host and port:
            try:
                self.remember_listen(f"{host}:{port}")
            except Exception as exc:  # not keeping the port must not stop the app
                log.warning("cannot keep the node's address in the config: %s", exc)

    # -- contributing ---------------------------------------------------------

    def read_file(self, path: str) -> Extracted:
        return extract_file(Path(path).expanduser())

    def read_pasted(self, text: str) -> Extracted:
        return extract_text(text.encode("utf-8"), "pasted text", "text/markdown")

    def chunk_preview(self, extracted: Extracted) -> list[str]:
        """The passages the index will cut this text into."""
        return [chunk.text for chunk in chunk_text(extracted.body)]

    def publish(
        self,
        extracted: Extracted,
        *,
        title: str | None,
        tags: list[str],
        licence: str | None,
        on_chunks: Callable[[int], None] | None = None,
    ) -> Published:
        """Sign, store and index. `on_chunks(n)` hears of passages embedded as they are."""
        if self.commons is not None and on_chunks is not None:
            self.commons.set_index_progress(lambda p: on_chunks(p.chunks))
        try:
            out = self.api.add(extracted, title=title, tags=tags, licence=licence, replaces=None)
        finally:
            if self.commons is not None and on_chunks is not None:
                self.commons.set_index_progress(None)
        return Published(DocRow.from_json(out), str(out.get("status", "added")))

    def warm_index(self) -> None:
        """Open the search index and catch it up, so the first question is quick."""
        if self.commons is not None:
            self.commons.search_index()

    def retract(self, doc_id: str, reason: str | None) -> None:
        self.api.retract(doc_id, reason)

    # -- peers ----------------------------------------------------------------
    #
    # Our own node runs in the app's event loop, so its calls are awaited there;
    # a node in another process is reached over its local API in a thread.

    @property
    def has_peers(self) -> bool:
        """Whether any node (ours or the owner of the home) can show and change peers."""
        return self.node is not None or self.remote is not None

    async def peers(self) -> list[PeerRow]:
        if self.node is not None:
            return [PeerRow.from_info(p) for p in self.node.peers()]
        if self.remote is None:
            return []
        return [PeerRow.from_info(p) for p in await asyncio.to_thread(self.remote.peers)]

    async def node_status(self) -> dict[str, Any] | None:
        """The node's /status view (its search index among it), or None without a node."""
        if self.node is not None:
            return await self.node.status()
        if self.remote is None:
            return None
        status: dict[str, Any] = await asyncio.to_thread(self.remote.status)
        return status

    async def add_peer(self, url: str) -> None:
        if self.node is not None:
            await self.node.add_peer(url)
        else:
            await asyncio.to_thread(self._remote().add_peer, url)

    async def remove_peer(self, url: str) -> None:
        if self.node is not None:
            self.node.remove_peer(url)
        else:
            await asyncio.to_thread(self._remote().remove_peer, url)

    async def sync_now(self) -> Any:
        """One gossip round now; returns what sync_now reports (one result per peer)."""
        if self.node is not None:
            return await self.node.sync_now()
        return await asyncio.to_thread(self._remote().sync_now)

    def _remote(self) -> RemoteApi:
        if self.remote is None:
            raise CommonsError("no node is running here; start the app without --offline")
        return self.remote
