"""Background embedding gives way to a question being answered and to arriving documents."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from commons.model.identity import Identity
from commons.model.objects import Document, sign
from commons.search.embedding import HashEmbedder
from commons.search.indexer import ARRIVAL_QUIET_S, BACKGROUND_SLICE, SearchIndex
from commons.search.vectors import MemoryVectors, memory_vectors
from commons.service import Commons
from commons.storage.home import HomePaths
from commons.storage.store import ObjectStore

WAIT_S = 60  # bound of every wait below; a correct run never comes near it


class PauseSeen(logging.Handler):
    """Sets `paused` when the indexer logs that its background embedding paused."""

    def __init__(self) -> None:
        super().__init__()
        self.paused = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "paused" in record.getMessage():
            self.paused.set()


class GatedEmbedder(HashEmbedder):
    """The hash embedder; the indexer's first call waits at a gate, and every call of
    the indexer's is recorded with whether a question was being answered then."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.calls: list[bool] = []  # per background call: was a question being answered?
        self.answering: Callable[[], bool] = lambda: False

    def embed_batch(self, texts: list[str]) -> Any:
        if threading.current_thread().name == "commons-indexer":
            self.calls.append(self.answering())
            self.entered.set()
            assert self.gate.wait(WAIT_S)
        return super().embed_batch(texts)


def test_background_embedding_pauses_while_a_question_is_answered(
    tmp_path: Path, clock: Callable[[], int], caplog: pytest.LogCaptureFixture
) -> None:
    embedder = GatedEmbedder()
    with Commons.init(HomePaths(tmp_path / "home"), clock=clock, embedder=embedder,
                      vectors=memory_vectors) as commons:
        for i in range(3 * BACKGROUND_SLICE):
            commons.add_document(title=f"Note {i}", body=f"Dry the maize for {i} days.")
        caplog.set_level(logging.DEBUG, logger="commons.search.indexer")
        index = commons.search_index(dense=False)  # the worker starts embedding
        assert embedder.entered.wait(WAIT_S)  # ... and is inside its first slice
        seen = PauseSeen()
        paused = seen.paused
        logging.getLogger("commons.search.indexer").addHandler(seen)
        try:
            with index.answering():
                embedder.answering = lambda: True
                embedder.gate.set()  # the slice ends; the next must wait for the answer
                assert paused.wait(WAIT_S), "the worker did not pause"
                answer = commons.ask("how long do I dry the maize?")
                embedder.answering = lambda: False
        finally:
            logging.getLogger("commons.search.indexer").removeHandler(seen)
        assert not answer.abstained
        assert embedder.calls and not any(embedder.calls), embedder.calls
        index.sync_dense()  # the backlog is finished once the answer is out
        assert index.state().complete
        assert len(embedder.calls) > 1


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_background_embedding_waits_until_documents_stop_arriving(
    tmp_path: Path, clock: Callable[[], int], alice: Identity
) -> None:
    embedder = GatedEmbedder()
    embedder.gate.set()
    monotonic = FakeMonotonic()
    store = ObjectStore(tmp_path / "commons.db")
    index = SearchIndex(store, embedder, MemoryVectors(), monotonic=monotonic)
    index.listen()
    seen = PauseSeen()
    paused = seen.paused
    indexer_log = logging.getLogger("commons.search.indexer")
    indexer_log.addHandler(seen)
    indexer_log.setLevel(logging.DEBUG)
    try:
        for i in range(BACKGROUND_SLICE + 1):  # as from a peer: each one wakes the worker
            doc = sign(Document(author=alice.public_key, created_at=clock(),
                                title=f"Note {i}", body=f"Dry the maize {i} days."), alice)
            store.put(doc, now=clock(), origin="http://peer.example")
        assert paused.wait(WAIT_S), "the worker did not wait for the arrivals to stop"
        assert embedder.calls == []  # words only, so far
        assert index.state().embedded == 0
        monotonic.now += ARRIVAL_QUIET_S  # quiet: the vectors follow
        wait_until(lambda: index.state().complete)
        assert embedder.calls
    finally:
        indexer_log.removeHandler(seen)
        indexer_log.setLevel(logging.NOTSET)
        index.close()
        store.close()


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
