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
from commons.display import author_label, fmt_datetime, short_id
from commons.model.errors import CommonsError, HomeError, IngestError, NotFound, Refused
from commons.model.identity import Identity
from commons.model.objects import (
    AnyContent,
    Document,
    Profile,
    Retraction,
    SignedObject,
    check_tags,
    normalise_text,
    parse,
    sign,
)
from commons.storage.home import HomeLock, HomePaths, create_identity
from commons.storage.store import ObjectStore, PutResult, Stored, prefix_range

if TYPE_CHECKING:
    from commons.answers.extractive import Answer
    from commons.answers.generated import Generator
    from commons.search.embedding import Embedder
    from commons.search.indexer import DenseState, Progress, SearchIndex
    from commons.search.vectors import VectorFactory

log = logging.getLogger(__name__)

Clock = Callable[[], int]
LICENCE_NOT_STATED = "not stated"


BUNDLE_PROBE_LINES = 20  # a file whose first lines hold no object is not a bundle
MAX_REASONS = 100  # refused lines whose reasons a report keeps (all are counted)


@dataclass
class ImportReport:
    accepted: int = 0
    duplicate: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    refused_count: int = 0
    not_a_bundle: bool = False  # stopped early: the first lines held no object

    def refuse(self, number: int, reason: str) -> None:
        self.refused_count += 1
        if len(self.refused) < MAX_REASONS:
            self.refused.append((number, reason))

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "refused": self.refused_count,
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
        self._index_lock = threading.Lock()  # the open index, and closing
        self._index_opening = threading.Lock()  # one opener at a time; close skips it
        self._index_ready = threading.Event()
        self._index_dir_used = False  # the vectors live in paths.index (embedded Chroma)
        self._recover_lock = threading.Lock()
        self._closing = False
        self._model_loading: threading.Thread | None = None
        self._answer_embedder: Embedder | None = None
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
        default_name: str | None = "anonymous",
        **options: Any,
    ) -> Commons:
        """Create a home (key, store, profile, seed documents), or open an existing one
        as it is. A new home's profile says `name`, else `default_name`; with neither
        there is none until the person gives one. `options` are the constructor's
        (embedder, embedder_factory, index_url, vectors)."""
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
            if fresh and (name or default_name):
                commons.set_name(name or default_name or "")
            if fresh:
                report = commons.import_lines(seeds.bundle_lines(), origin="seed")
                log.info("seeded %d documents", report.accepted)
        except BaseException:
            commons.close()
            raise
        return commons

    def close(self) -> None:
        """Close the index (its worker stops after the passages in hand), the store
        and the lock. A thread still opening the index gives up instead of waiting."""
        with self._index_lock:
            self._closing = True
        self._index_ready.set()  # wake readers waiting for an index that will not open
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
        licence: str | None = None,
        replaces: str | None = None,
    ) -> tuple[SignedObject, PutResult]:
        """Sign and store a document. Identical content by this author is stored once.

        With no licence chosen the document says "not stated": nothing is claimed
        for the author that they did not choose.
        """
        tags = check_tags(tags)  # a bad tag is an error even when the text is a duplicate
        licence = normalise_text(licence or "") or LICENCE_NOT_STATED
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
            tags=tags,
            licence=licence,
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
        """An author by full key, key prefix (8+ hex), or display name (exact, else the
        start of the name or of one of its words), in any case."""
        text = text.strip()
        keys = self.store.authors()
        lowered = text.lower()
        if len(lowered) >= 8 and all(c in "0123456789abcdef" for c in lowered):
            matches = {k for k in keys if k.hex().startswith(lowered)}
        else:
            names = self.store.display_names()
            wanted = text.casefold()
            matches = {k for k, n in names.items() if n.casefold() == wanted}
            if not matches:  # a name's start, or any word's: "seeds" finds "commons seeds"
                matches = {
                    k for k, n in names.items()
                    if n.casefold().startswith(wanted)
                    or any(w.startswith(wanted) for w in n.casefold().split())
                }
        if not matches:
            raise NotFound(f"no author {text!r} in this commons; `commons ls` shows who is here")
        if len(matches) > 1:
            raise NotFound(f"{text!r} names several authors; give more of the name or their key")
        return matches.pop()

    def show(self, prefix: str) -> Stored:
        try:
            oid = self.resolve(prefix)
        except NotFound:
            raise self._why_missing(prefix) from None
        stored = self.store.get_stored(oid)
        if stored.obj.author in self.hidden_authors():
            raise NotFound(
                f"{stored.obj.id.hex()[:16]}… is by an author you blocked"
                f" ({stored.obj.author.hex()[:16]}…); `commons unblock KEY` shows it again"
            )
        return stored

    def _why_missing(self, prefix: str) -> NotFound:
        """NotFound that says so when the object was retracted (its tombstone is kept)."""
        low, high = prefix_range(prefix)
        rows = self.store.query(
            "SELECT target, retraction FROM tombstones WHERE target BETWEEN ? AND ? LIMIT 1",
            (low, high),
        )
        if not rows:
            return NotFound(f"no object with an id starting {prefix.strip().lower()}")
        target, retraction_id = bytes(rows[0][0]), bytes(rows[0][1])
        try:
            retraction = self.store.get(retraction_id)
        except NotFound:
            return NotFound(f"{short_id(target.hex())} was retracted by its author")
        names = self.store.display_names()
        who = author_label(retraction.author.hex(), names.get(retraction.author))
        content = retraction.content
        reason = content.reason if isinstance(content, Retraction) else None
        why = f" (reason: {reason})" if reason else ""
        return NotFound(
            f"{short_id(target.hex())} was retracted by {who} on"
            f" {fmt_datetime(retraction.created_at)} UTC{why}; its author withdrew it, so it"
            " is no longer kept or shared"
        )

    def replaced_by(self, oid: bytes) -> list[bytes]:
        """Stored newer versions of document `oid`, by its author, newest first."""
        rows = self.store.query(
            "SELECT n.id FROM versions v JOIN objects n ON n.id = v.new"
            " JOIN objects o ON o.id = v.old AND o.author = v.author"
            " WHERE v.old = ? ORDER BY n.created_at DESC",
            (oid,),
        )
        return [bytes(r[0]) for r in rows]

    def search(
        self, query: str, *, limit: int = 20, author: str | None = None, tag: str | None = None
    ) -> list[tuple[Stored, str]]:
        """Current documents whose words match `query`, best first, each with a snippet
        (matching words in [brackets])."""
        from commons.search.lexical import Filters

        filters = Filters(
            authors=frozenset([self.resolve_author(author)]) if author else frozenset(),
            tags=frozenset([tag.strip().lower()]) if tag else frozenset(),
            blocked=self.hidden_authors(),
        )
        index = self.search_index(dense=False)  # words only: never wait for vectors
        out = []
        for hit in index.words.search_documents(query, limit, filters):
            try:
                out.append((self.store.get_stored(hit.doc), hit.snippet))
            except NotFound:  # retracted since it was indexed
                continue
        return out

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

    @property
    def answer_embedder(self) -> Embedder:
        """The embedder, remembering the vectors of the sentences answers weigh."""
        if self._answer_embedder is None:
            from commons.search.embedding import CachedEmbedder

            self._answer_embedder = CachedEmbedder(self.embedder)
        return self._answer_embedder

    def _open_index(self) -> tuple[SearchIndex, bool]:
        with self._index_opening:
            with self._index_lock:
                if self._index is not None:
                    return self._index, False
                self._check_open()
            from commons.search.chroma import chroma_vectors
            from commons.search.embedding import start_loading
            from commons.search.indexer import SearchIndex
            from commons.search.vectors import Preparable

            # The model loads on one core while the vector store opens (importing
            # chromadb) on the other: most of a cold `ask`.
            self._model_loading = start_loading(self.embedder)
            factory = self._vectors or chroma_vectors(str(self.paths.index), self.index_url)
            try:
                if isinstance(factory, Preparable):
                    factory.prepare()  # slow imports, while closing need not wait
                with self._index_lock:
                    self._check_open()
                    vectors = factory(self.public_key.hex()[:16], self.embedder)
                    index = SearchIndex(self.store, self.embedder, vectors)
                    index.progress = self._index_progress
                    index.listen()
                    self._index = index
                    self._index_dir_used = self.paths.index.is_dir()
                    self.on_close(self._close_index)
                    return index, True
            except BaseException:
                if self._model_loading is not None:
                    self._model_loading.join()
                    self._model_loading = None
                raise

    def _check_open(self) -> None:
        if self._closing:
            raise HomeError(f"{self.paths.root} is closing; open it again to search it")

    def _close_index(self) -> None:
        with self._index_lock:
            if self._model_loading is not None:
                self._model_loading.join()
                self._model_loading = None
            if self._index is not None:
                self._index.close()
                self._index = None

    def search_index(self, *, dense: bool = True, catch_up: bool = True) -> SearchIndex:
        """The search index, opened on first call and then kept up with the store.

        Every stored document is searchable by words when it returns. With
        `dense` (the default), every one is searchable by meaning too: this waits
        for the embedding backlog. Without it, vectors fill in behind, from a
        worker thread; `index_state()` says how far they are. Without `catch_up`,
        documents that arrived since the index opened are left to that worker
        too. Safe from any thread.
        """
        self._recover_vanished_index()
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
            self._check_open()
            if catch_up:  # (an `add` indexes its own document and leaves the backlog be)
                index.sync_words()
        if dense:
            index.sync_dense()
        return index

    def _recover_vanished_index(self) -> None:
        """If index/ was deleted while the index was open, open it again and index every
        document again: words at once, vectors behind (the store is the source of truth)."""
        with self._recover_lock:
            with self._index_lock:
                vanished = (self._index is not None and self._index_dir_used
                            and not self.paths.index.is_dir())
            if not vanished:
                return
            log.warning("%s was deleted while this home was open; rebuilding the search index"
                        " from the store", self.paths.index)
            try:
                self._close_index()
            except Exception:  # the vector store's files are gone; let it go
                log.warning("closing the lost vector index failed", exc_info=True)
                with self._index_lock:
                    self._index = None
            self._index_ready.clear()  # others wait until the rebuilt index has its words
            index, _ = self._open_index()
            try:
                index.reset()
                index.sync_words()
            finally:
                self._index_ready.set()
            index.wake()

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
        report = self.import_lines(
            read_bundle(path), origin=f"import:{path.name}", probe=BUNDLE_PROBE_LINES
        )
        if report.not_a_bundle:
            raise IngestError(
                f"{path.name} is not a commons bundle (the first {BUNDLE_PROBE_LINES} lines"
                f" hold no object; line {report.refused[0][0]}: {report.refused[0][1]});"
                " a bundle is what `commons export` writes; nothing was imported"
            )
        return report

    def import_lines(
        self, lines: Iterable[tuple[int, bytes]], *, origin: str, probe: int | None = None
    ) -> ImportReport:
        """Verify and store each line's object; one bad line never stops the rest, but
        with `probe`, a file whose first `probe` lines hold no object stops there."""
        report = ImportReport()
        hidden = self.hidden_authors()
        seen_object = False
        for number, line in lines:
            seen_object = seen_object or line.lstrip()[:1] == b"{"
            if probe is not None and number > probe and not seen_object:
                report.not_a_bundle = True
                break
            now = self.clock()
            try:
                obj = parse(line, now=now)
                if obj.author in hidden:
                    raise Refused(f"{obj.id.hex()[:16]}… is by an author you blocked")
                result = self.store.put(obj, now=now, origin=origin)
            except Refused as exc:
                report.refuse(number, str(exc))
                continue
            if result is PutResult.ADDED:
                report.accepted += 1
            else:
                report.duplicate += 1
        if probe is not None and report.refused_count and not seen_object:
            report.not_a_bundle = True
        return report
