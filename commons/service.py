"""The commons as one object: a home's key and store, and what people do with them.

The CLI, the node's local API and the TUI all call this facade, so each
action has exactly one implementation.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from commons import seeds
from commons.model.errors import CommonsError, HomeError, NotFound, Refused
from commons.model.identity import Identity
from commons.model.objects import (
    AnyContent,
    Document,
    Profile,
    Retraction,
    SignedObject,
    normalise_tags,
    normalise_text,
    parse,
    sign,
)
from commons.storage.home import HomeLock, HomePaths, create_identity
from commons.storage.store import ObjectStore, PutResult, Stored

if TYPE_CHECKING:
    from commons.answers.extractive import Answer, Generator
    from commons.search.embedding import Embedder
    from commons.search.indexer import DenseState, Progress, SearchIndex
    from commons.search.vectors import VectorFactory

log = logging.getLogger(__name__)

Clock = Callable[[], int]


@dataclass
class ImportReport:
    accepted: int = 0
    duplicate: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "refused": len(self.refused),
            "reasons": [{"line": n, "reason": r} for n, r in self.refused],
        }


def summary(stored: Stored, names: dict[bytes, str] | None = None) -> dict[str, Any]:
    """The JSON form `ls --json` and the local API give for an object."""
    obj = stored.obj
    out: dict[str, Any] = {
        "id": obj.id.hex(),
        "kind": obj.kind,
        "author": obj.author.hex(),
        "author_name": (names or {}).get(obj.author),
        "created_at": obj.created_at,
        "origin": stored.origin,
        "received_at": stored.received_at,
    }
    content = obj.content
    if isinstance(content, Document):
        out.update(
            title=content.title,
            tags=list(content.tags),
            licence=content.licence,
            media_type=content.media_type,
            replaces=content.replaces.hex() if content.replaces else None,
            size=len(content.body.encode("utf-8")),
        )
    return out


def read_bundle(path: Path) -> Iterator[tuple[int, bytes]]:
    """Lines of a bundle file with their numbers; blank lines are skipped."""
    try:
        with open(path, "rb") as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    yield number, line.rstrip(b"\r\n")
    except FileNotFoundError as exc:
        raise CommonsError(f"{path} does not exist") from exc
    except IsADirectoryError as exc:
        raise CommonsError(f"{path} is a directory, not a bundle file") from exc
    except PermissionError as exc:
        raise CommonsError(f"{path} cannot be read (permission denied)") from exc


def write_atomically(path: Path, lines: Iterable[bytes]) -> int:
    """Write lines to a temporary file beside `path`, then rename it into place."""
    path = path.expanduser()
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise CommonsError(f"cannot write {path}: {directory} is not a directory")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    count = 0
    try:
        with os.fdopen(fd, "wb") as f:
            for line in lines:
                f.write(line + b"\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


class Commons:
    """One home, opened and owned by this process."""

    def __init__(
        self,
        paths: HomePaths,
        *,
        clock: Clock,
        embedder: Embedder | None = None,
        embedder_factory: Callable[[], Embedder] | None = None,
        index_url: str | None = None,
        vectors: VectorFactory | None = None,
    ) -> None:
        paths.require()
        self.paths = paths
        self.clock = clock
        # The search index is opened on first use: `commons ls` must not pay for
        # importing torch and chromadb.
        self._embedder = embedder
        # Loaded on first use, so a command that never indexes never resolves it.
        self._embedder_factory = embedder_factory
        self.index_url = index_url
        # Where passage vectors live; None: Chroma in the home's index directory,
        # or the server at index_url.
        self._vectors = vectors
        self._index: SearchIndex | None = None
        self._index_lock = threading.Lock()
        self._index_ready = threading.Event()
        self._index_progress: Progress | None = None
        # Authors whose documents answers never use (a node sets it from its policy).
        self.blocked: frozenset[bytes] = frozenset()
        self._lock = HomeLock(paths).acquire()
        try:
            self.identity = Identity.load(paths.key)
            self.store = ObjectStore(paths.db)
        except BaseException:
            self._lock.release()
            raise
        self._closers: list[Callable[[], None]] = [self.store.close, self._lock.release]

    @classmethod
    def init(
        cls,
        paths: HomePaths,
        *,
        clock: Clock,
        name: str | None = None,
        default_name: str = "anonymous",
        **options: Any,
    ) -> Commons:
        """Create a home (key, store, profile, seed documents), or open an existing one.

        A new home's profile says `name`, else `default_name`. `options` are the
        constructor's (embedder, embedder_factory, index_url, vectors)."""
        if paths.root.exists() and not paths.root.is_dir():
            raise HomeError(f"{paths.root} exists and is not a directory; choose another --home")
        fresh = not paths.key.exists()
        if fresh:
            if paths.db.exists():
                raise HomeError(
                    f"{paths.root} has a store but no {paths.key.name}; restore the key from"
                    " a backup rather than making a new one"
                )
            with HomeLock(paths):
                create_identity(paths)
                ObjectStore(paths.db).close()
        commons = cls(paths, clock=clock, **options)
        try:
            if fresh or name:
                commons.set_name(name or default_name)
            if fresh:
                report = commons.import_lines(seeds.bundle_lines(), origin="seed")
                log.info("seeded %d documents", report.accepted)
        except BaseException:
            commons.close()
            raise
        return commons

    def close(self) -> None:
        for closer in reversed(self._closers):
            closer()
        self._closers.clear()

    def on_close(self, closer: Callable[[], None]) -> None:
        self._closers.append(closer)

    def __enter__(self) -> Commons:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- identity -------------------------------------------------------------

    @property
    def public_key(self) -> bytes:
        return self.identity.public_key

    def name_of(self, author: bytes) -> str | None:
        return self.store.display_name(author)

    def whoami(self) -> dict[str, Any]:
        return {
            "public_key": self.public_key.hex(),
            "name": self.name_of(self.public_key),
            "home": str(self.paths.root),
        }

    def set_name(self, name: str) -> SignedObject:
        return self.publish(
            Profile(author=self.public_key, created_at=self.clock(), name=normalise_text(name))
        )

    # -- writing --------------------------------------------------------------

    def publish(self, content: AnyContent) -> SignedObject:
        obj = sign(content, self.identity)
        self.store.put(obj, now=self.clock(), origin="local")
        return obj

    def add_document(
        self,
        *,
        title: str,
        body: str,
        media_type: str = "text/markdown",
        tags: Iterable[str] = (),
        licence: str = "CC-BY-4.0",
        replaces: str | None = None,
    ) -> tuple[SignedObject, PutResult]:
        """Sign and store a document. Identical content by this author is stored once."""
        old = self.resolve(replaces) if replaces else None
        body = normalise_text(body)
        existing = self.find_same_document(title=normalise_text(title), body=body)
        if existing is not None and old is None:
            return existing, PutResult.DUPLICATE
        content = Document(
            author=self.public_key,
            created_at=self.clock(),
            title=normalise_text(title),
            body=body,
            media_type=media_type,
            tags=normalise_tags(tags),
            licence=normalise_text(licence),
            replaces=old,
        )
        return self.publish(content), PutResult.ADDED

    def find_same_document(self, *, title: str, body: str) -> SignedObject | None:
        # Narrowed by title in the store, so adding many files to a large home is
        # not quadratic in Python object decoding.
        for stored in self.store.objects(kind="document", author=self.public_key, title=title):
            content = stored.obj.content
            if isinstance(content, Document) and content.body == body:
                return stored.obj
        return None

    def retract(self, prefix: str, reason: str | None = None) -> SignedObject:
        target = self.store.get(self.resolve(prefix))
        if target.author != self.public_key:
            raise Refused(
                f"{target.id.hex()[:16]}… was written by {target.author.hex()[:16]}…, not by"
                " you; only its author can retract it (to hide it here, block the author)"
            )
        if target.kind == "retraction":
            raise Refused("a retraction cannot itself be retracted")
        return self.publish(
            Retraction(
                author=self.public_key,
                created_at=self.clock(),
                target=target.id,
                reason=normalise_text(reason) if reason else None,
            )
        )

    # -- reading --------------------------------------------------------------

    def resolve(self, prefix: str) -> bytes:
        return self.store.resolve(prefix)

    def documents(self, *, author: str | None = None, tag: str | None = None) -> list[Stored]:
        author_key = self.resolve_author(author) if author else None
        hidden = self.hidden_authors()
        return [
            s for s in self.store.objects(
                kind="document", author=author_key, tag=tag.lower() if tag else None)
            if s.obj.author not in hidden
        ]

    # -- blocking ---------------------------------------------------------------

    def hidden_authors(self) -> frozenset[bytes]:
        """Authors whose objects this home neither shows, uses in answers, nor serves."""
        return self.blocked | self.store.blocked_keys()

    def block(self, author: str, reason: str | None = None) -> dict[str, Any]:
        key = self._author_key(author)
        if key == self.public_key:
            raise Refused("that is your own key; you cannot block yourself")
        added = self.store.block(key, reason=normalise_text(reason) if reason else None,
                                 now=self.clock())
        return {"author": key.hex(), "name": self.name_of(key), "blocked": True,
                "changed": added}

    def unblock(self, author: str) -> dict[str, Any]:
        key = self._author_key(author)
        removed = self.store.unblock(key)
        if not removed:
            raise NotFound(f"{key.hex()[:16]}… is not blocked; `commons blocked` lists who is")
        return {"author": key.hex(), "name": self.name_of(key), "blocked": False,
                "changed": True}

    def blocked_authors(self) -> list[dict[str, Any]]:
        names = self.store.display_names()
        return [
            {"author": b.author.hex(), "name": names.get(b.author), "reason": b.reason,
             "at": b.at}
            for b in self.store.blocked()
        ]

    def _author_key(self, text: str) -> bytes:
        """A full key (even of someone we hold nothing from), else what resolve_author finds."""
        lowered = text.strip().lower()
        if len(lowered) == 64 and all(c in "0123456789abcdef" for c in lowered):
            return bytes.fromhex(lowered)
        return self.resolve_author(text)

    def resolve_author(self, text: str) -> bytes:
        """An author by full key, key prefix (8+ hex), or display name."""
        text = text.strip()
        keys = self.store.authors()
        lowered = text.lower()
        if len(lowered) >= 8 and all(c in "0123456789abcdef" for c in lowered):
            matches = {k for k in keys if k.hex().startswith(lowered)}
        else:
            names = self.store.display_names()
            matches = {k for k, n in names.items() if n.casefold() == text.casefold()}
        if not matches:
            raise NotFound(f"no author {text!r} in this commons; `commons ls` shows who is here")
        if len(matches) > 1:
            raise NotFound(f"{text!r} names several authors; give their key instead")
        return matches.pop()

    def show(self, prefix: str) -> Stored:
        stored = self.store.get_stored(self.resolve(prefix))
        if stored.obj.author in self.hidden_authors():
            raise NotFound(
                f"{stored.obj.id.hex()[:16]}… is by an author you blocked"
                f" ({stored.obj.author.hex()[:16]}…); `commons unblock KEY` shows it again"
            )
        return stored

    # -- asking ---------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            if self._embedder_factory is not None:
                self._embedder = self._embedder_factory()
            else:
                from commons.search.embedding import load_embedder

                self._embedder = load_embedder(None)
        return self._embedder

    def _open_index(self) -> tuple[SearchIndex, bool]:
        with self._index_lock:
            if self._index is not None:
                return self._index, False
            from commons.search.chroma import chroma_vectors
            from commons.search.indexer import SearchIndex

            factory = self._vectors or chroma_vectors(str(self.paths.index), self.index_url)
            vectors = factory(self.public_key.hex()[:16], self.embedder)
            index = SearchIndex(self.store, self.embedder, vectors)
            index.progress = self._index_progress
            index.listen()
            self._index = index
            self.on_close(self._close_index)
            return index, True

    def _close_index(self) -> None:
        with self._index_lock:
            if self._index is not None:
                self._index.close()
                self._index = None
                self._index_ready.clear()

    def search_index(self, *, dense: bool = True) -> SearchIndex:
        """The search index, opened on first call and then kept up with the store.

        Every stored document is searchable by words when it returns. With
        `dense` (the default), every one is searchable by meaning too: this waits
        for the embedding backlog. Without it, vectors fill in behind, from a
        worker thread; `index_state()` says how far they are. Safe from any thread.
        """
        index, opened = self._open_index()
        if opened:
            try:
                index.sync_words()
            finally:
                self._index_ready.set()
            index.wake()  # embed whatever has words but no vectors yet
        else:
            # Another thread opened it and may still be catching up; answering
            # from a half-built index would wrongly say nothing matches.
            self._index_ready.wait()
            index.sync_words()
        if dense:
            index.sync_dense()
        return index

    def index_state(self) -> DenseState:
        """How many documents are searchable by meaning, of all those searchable by words."""
        return self.search_index(dense=False).state()

    def set_index_progress(self, progress: Progress | None) -> None:
        """Report indexing work (passages embedded) to `progress`, from whichever thread."""
        self._index_progress = progress
        if self._index is not None:
            self._index.progress = progress

    def ask(
        self,
        question: str,
        *,
        k: int = 8,
        authors: Iterable[str] = (),
        tags: Iterable[str] = (),
        blocked: Iterable[bytes] = (),
        generator: Generator | None = None,
    ) -> Answer:
        """Answer from the local copy of the commons, citing the passages used."""
        from commons.answers.ask import ask

        return ask(
            self,
            question,
            k=k,
            authors=[self.resolve_author(a) for a in authors],
            tags=[t.strip().lower() for t in tags if t.strip()],
            blocked=self.hidden_authors() | frozenset(blocked),
            generator=generator,
        )

    def reindex(self) -> dict[str, int]:
        """Rebuild the vector and word indexes from the object store."""
        index, opened = self._open_index()
        try:
            report = index.rebuild()
        finally:
            if opened:
                self._index_ready.set()
        return {**report.to_json(), **index.counts()}

    # -- bundles --------------------------------------------------------------

    def export(self, path: Path, *, authors: Iterable[str] = ()) -> int:
        """Write a bundle of every object (or of some authors' objects). Returns the count."""
        keys = [self.resolve_author(a) for a in authors]
        if keys:
            stored = [s for k in keys for s in self.store.objects(author=k, heads_only=False)]
            stored.sort(key=lambda s: (s.obj.created_at, s.obj.id))
        else:
            stored = self.store.objects(heads_only=False)
        return write_atomically(path, (s.obj.to_bytes() for s in stored))

    def import_bundle(self, path: Path) -> ImportReport:
        return self.import_lines(read_bundle(path), origin=f"import:{path.name}")

    def import_lines(self, lines: Iterable[tuple[int, bytes]], *, origin: str) -> ImportReport:
        """Verify and store each line's object; one bad line never stops the rest."""
        report = ImportReport()
        hidden = self.hidden_authors()
        for number, line in lines:
            now = self.clock()
            try:
                obj = parse(line, now=now)
                if obj.author in hidden:
                    raise Refused(f"{obj.id.hex()[:16]}… is by an author you blocked")
                result = self.store.put(obj, now=now, origin=origin)
            except Refused as exc:
                report.refused.append((number, str(exc)))
                continue
            if result is PutResult.ADDED:
                report.accepted += 1
            else:
                report.duplicate += 1
        return report
