"""Stopping a node, closing a home and quitting the app do not wait for indexing;
nothing stored is lost and the next start finishes the index."""

from __future__ import annotations

import asyncio
import random
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from embedders import embedder_for_tests
from sync_support import Peer, now, peers_in, wait_for
from tui_support import make_backend, make_home, settle

from commons.model.errors import HomeError
from commons.search.chroma import chroma_vectors
from commons.search.embedding import Embedder, load_embedder
from commons.search.lexical import LexicalIndex
from commons.search.vectors import MemoryVectors, VectorStore
from commons.service import Commons
from commons.storage.home import HomeLock, HomePaths
from commons.storage.store import ObjectStore
from sync.http.node import Node
from tui.app import CommonsApp

BOUND = 30.0  # seconds any one wait may take before the test gives up


class SlowToOpen:
    """A vector factory whose set-up (as importing chromadb) waits until it is released."""

    def __init__(self) -> None:
        self.preparing = threading.Event()
        self.release = threading.Event()
        self.opened = 0

    def prepare(self) -> None:
        self.preparing.set()
        self.release.wait(BOUND)

    def __call__(self, namespace: str, embedder: Embedder) -> VectorStore:
        self.opened += 1
        return MemoryVectors()


def test_closing_a_home_does_not_wait_for_its_index_to_open(tmp_path: Path) -> None:
    paths = HomePaths(tmp_path / "home")
    Commons.init(paths, clock=now, name="me").close()
    factory = SlowToOpen()
    commons = Commons(paths, clock=now, embedder=embedder_for_tests(), vectors=factory)
    errors: list[BaseException] = []

    def search() -> None:
        try:
            commons.search_index(dense=False)
        except BaseException as exc:
            errors.append(exc)

    opener = threading.Thread(target=search, daemon=True)
    opener.start()
    assert factory.preparing.wait(BOUND)
    closer = threading.Thread(target=commons.close, daemon=True)
    closer.start()
    closer.join(BOUND)
    closed_first = not closer.is_alive()  # closed while the opener was still preparing
    factory.release.set()
    opener.join(BOUND)
    assert closed_first
    assert factory.opened == 0  # nothing was opened after the home closed
    assert len(errors) == 1 and isinstance(errors[0], HomeError)
    assert "closing" in str(errors[0])
    with HomeLock(paths):  # the lock was released
        pass


async def test_a_node_stops_while_its_index_is_still_opening(tmp_path: Path) -> None:
    paths = HomePaths(tmp_path / "home")
    Commons.init(paths, clock=now, name="me").close()
    factory = SlowToOpen()
    commons = Commons(paths, clock=now, embedder=embedder_for_tests(), vectors=factory)
    node = Node(commons, listen="127.0.0.1:0", rng=random.Random(1), clock=now)
    try:
        await node.start()
        assert await asyncio.to_thread(factory.preparing.wait, BOUND)
        stopping = asyncio.ensure_future(node.stop())
        done, _ = await asyncio.wait([stopping], timeout=BOUND)
        stopped_first = stopping in done  # before the index finished opening
        await stopping
        assert stopped_first
        assert paths.node_info() is None
    finally:
        commons.close()  # as `serve` does after its loop ends; the opener then gives up
        factory.release.set()


async def test_the_app_quits_while_indexing_and_the_home_reopens(tmp_path: Path) -> None:
    commons = make_home(tmp_path / "home", clock=now, from_peer=False)
    for i in range(40):
        commons.add_document(title=f"Field note {i}", body=f"Notes on the well, day {i}.\n\n"
                             + "The pump keeps its pressure when the panels are clean. " * 40)
    node = Node(commons, listen="127.0.0.1:0", rng=random.Random(7), clock=now)
    backend = make_backend(commons, node=node)
    try:
        app = CommonsApp(backend)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot, app)
            assert app.node_running
            await pilot.press("ctrl+q")
        assert commons.paths.node_info() is None  # the node stopped with the app
    finally:
        backend.close()
    with HomeLock(commons.paths):  # the lock was released
        pass
    again = make_backend(Commons(commons.paths, clock=now, embedder=embedder_for_tests(),
                                 vectors=lambda namespace, embedder: MemoryVectors()))
    try:
        app = CommonsApp(again, warm_index=True)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot, app)
            await app.workers.wait_for_complete()
            assert "Field note 39" in {r.title for r in app.mode_screens["library"].rows}  # type: ignore[attr-defined]
            again.commons.search_index()  # waits for every vector
            assert again.commons.index_state().complete
    finally:
        again.close()


# -- a real `serve` process with the real model ----------------------------------------

WORDS = (
    "river", "field", "seed", "harvest", "water", "stone", "market", "school",
    "library", "road", "bridge", "rain", "season", "grain", "mill", "tool",
)
DOCUMENTS = 150  # three rounds of embedding: far more than one stop waits for


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[[str], Peer]]:
    yield from peers_in(tmp_path)


def vectors_and_passages(home: Path, embedder: Embedder) -> tuple[int, int, int, int]:
    """(vectors in Chroma, passages marked embedded, documents embedded, documents)."""
    paths = HomePaths(home)
    with Commons(paths, clock=now) as commons:
        key = commons.public_key
    store = ObjectStore(paths.db)
    try:
        counts = LexicalIndex(store).dense_counts()
    finally:
        store.close()
    vectors = chroma_vectors(str(paths.index))(key.hex()[:16], embedder)
    try:
        return vectors.count(), counts.embedded_chunks, counts.embedded, counts.documents
    finally:
        vectors.close()


def stop(peer: Peer, sig: int) -> int:
    assert peer.proc is not None
    peer.proc.send_signal(sig)
    return peer.proc.wait(timeout=BOUND)


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_stopped_while_indexing_resumes_on_the_next_start(
    spawn: Callable[[str], Peer], onnx_cache: Path, monkeypatch: pytest.MonkeyPatch, sig: int
) -> None:
    rng = random.Random(5)
    peer = spawn("a")
    with Commons(HomePaths(peer.home), clock=now) as commons:
        for i in range(DOCUMENTS):
            body = " ".join(rng.choice(WORDS) for _ in range(120)) + "."  # one passage
            commons.add_document(title=f"Notes {i}", body=body)
    monkeypatch.setenv("COMMONS_CACHE", str(onnx_cache))
    monkeypatch.setenv("COMMONS_EMBEDDER", "minilm")
    peer.start()
    wait_for(lambda: (peer.status().get("dense_index") or {}).get("dense", 0) > 0,
             "the node embeds its backlog", deadline=600)
    assert not peer.status()["dense_index"]["complete"]
    assert stop(peer, sig) == 0
    assert "stopped" in peer.log.read_text()
    assert HomePaths(peer.home).node_info() is None
    embedder = load_embedder("minilm", cache_dir=onnx_cache)
    vectors, passages, embedded, documents = vectors_and_passages(peer.home, embedder)
    assert documents >= DOCUMENTS and 0 < embedded < documents  # stopped mid-backlog
    assert vectors >= passages  # every passage marked embedded has its vector

    peer.start()  # the next start embeds the rest
    wait_for(lambda: peer.status()["dense_index"]["complete"], "the dense index completes",
             deadline=600)
    assert stop(peer, signal.SIGTERM) == 0
    vectors, passages, embedded, documents = vectors_and_passages(peer.home, embedder)
    assert embedded == documents >= DOCUMENTS
    assert vectors == passages > 0

