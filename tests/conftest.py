"""Fixtures shared by the whole suite: a temp home, a fixed clock, keys."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from embedders import embedder_for_tests

from commons.model.identity import Identity
from commons.search.vectors import memory_vectors
from commons.service import Commons
from commons.storage.home import HomePaths
from commons.storage.store import ObjectStore

NOW = 1_800_000_000


class FixedClock:
    """A clock tests move by hand."""

    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
async def make_node(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """Makes nodes on loopback ports, each with its own home and clock (a FixedClock at
    NOW, or `clock=`); they gossip only when a test says so (a round an hour, unless
    `round_interval=`). `start=False` leaves one unstarted. All are stopped at the end."""
    import random

    from sync.http.node import Node

    nodes: list[Node] = []
    homes: list[Commons] = []

    async def make(name: str, *, start: bool = True, **kwargs: Any) -> Node:
        clock = kwargs.pop("clock", None) or FixedClock()
        commons = Commons.init(HomePaths(tmp_path / name), clock=clock, name=name,
                               embedder=embedder_for_tests())
        homes.append(commons)
        kwargs.setdefault("round_interval", 3600.0)
        node = Node(commons, rng=random.Random(len(nodes)), clock=clock, name=name, **kwargs)
        nodes.append(node)
        if start:
            await node.start()
        return node

    yield make
    for node in nodes:
        await node.stop()
    for commons in homes:
        commons.close()


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache directory for the whole run: the ONNX export of the model is made once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def onnx_cache(model_cache: Path) -> Path:
    """The cache directory (as $COMMONS_CACHE) with the model exported to ONNX in it."""
    from commons.search.onnx import ensure_onnx

    cache = model_cache / "commons"
    ensure_onnx(cache)
    return cache


@pytest.fixture(autouse=True)
def isolated_dirs(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, model_cache: Path
) -> None:
    """No test reads or writes the real user's home, config or model caches."""
    base = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("XDG_CACHE_HOME", str(model_cache))
    monkeypatch.delenv("COMMONS_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(base))
    monkeypatch.setenv("XDG_DATA_HOME", str(base / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "config"))
    monkeypatch.delenv("COMMONS_HOME", raising=False)
    monkeypatch.setenv("COMMONS_EMBEDDER", os.environ.get("COMMONS_TEST_EMBEDDER", "fake"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("ANONYMIZED_TELEMETRY", "False")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def alice() -> Identity:
    return Identity(bytes(range(32)))


@pytest.fixture
def bob() -> Identity:
    return Identity(bytes(range(32, 64)))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ObjectStore]:
    s = ObjectStore(tmp_path / "commons.db")
    yield s
    s.close()


@pytest.fixture
def home(tmp_path: Path, clock: FixedClock) -> Iterator[Commons]:
    """A fresh, seeded home owned by this test (vectors in memory: tests of Chroma
    itself open their own homes)."""
    commons = Commons.init(
        HomePaths(tmp_path / "home"),
        clock=clock,
        name="tester",
        embedder=embedder_for_tests(),
        vectors=memory_vectors,
    )
    yield commons
    commons.close()


@pytest.fixture
def commons(tmp_path: Path) -> Iterator[Commons]:
    """The fixed home of the app tests (fixed keys, clock and documents)."""
    from tui_support import make_home

    c = make_home(tmp_path / "home")
    yield c
    c.close()


@pytest.fixture
def backend(commons: Commons) -> Any:
    """The app's backend over the fixed home, with no node."""
    from tui_support import make_backend

    return make_backend(commons)
