"""The composition root: the one place that builds the object graph.

From one `Settings` (read once, from flags, environment and the home's config
file) it builds the home, its store and identity (`Commons`), the embedder, the
vector store, the answerer's generator, the gossip node and the app. No module
below this one reads the environment or picks an implementation by itself.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from commons.api import CommonsApi, LocalApi
from commons.model.errors import HomeLocked
from commons.remote import RemoteApi
from commons.service import Commons
from commons.settings import Settings
from commons.storage.home import HomePaths

if TYPE_CHECKING:
    from commons.search.embedding import Embedder
    from sync.api import RunningNode
    from sync.http.node import Node
    from tui.backend import Backend


def wall_clock() -> int:
    return int(time.time())


class Root:
    """Builds what a command or the app needs, each thing once, from the settings."""

    def __init__(self, settings: Settings, *, clock: Callable[[], int] = wall_clock) -> None:
        self.settings = settings
        self._clock = clock
        self._embedder: Embedder | None = None

    def clock(self) -> int:
        return self._clock()

    @property
    def paths(self) -> HomePaths:
        return HomePaths(self.settings.home)

    # -- the core ---------------------------------------------------------------

    def embedder(self) -> Embedder:
        """The embedder the settings name, loaded once (the model itself loads lazily)."""
        if self._embedder is None:
            from commons.search.embedding import load_embedder

            self._embedder = load_embedder(self.settings.embedder)
        return self._embedder

    def _commons_options(self) -> dict[str, Any]:
        return {
            "clock": self._clock,
            "embedder": self.embedder(),
            "index_url": self.settings.index_url,
        }

    def open_commons(self) -> Commons:
        """Own the existing home (it must exist)."""
        self.paths.require()
        return Commons(self.paths, **self._commons_options())

    def init_commons(self, *, name: str | None = None) -> Commons:
        """Create the home (key, store, profile, seeds) if needed, and own it."""
        return Commons.init(self.paths, name=name, **self._commons_options())

    def open_node_home(self) -> Commons:
        return self.open_commons()

    @contextmanager
    def open_owner(self) -> Iterator[Commons | RemoteApi]:
        """The home itself if no process owns it, else the API of the node that does."""
        paths = self.paths
        paths.require()
        try:
            commons = Commons(paths, **self._commons_options())
        except HomeLocked:
            info = paths.node_info()
            if info is None:
                raise
            yield RemoteApi.from_node_info(info)
            return
        with commons:
            yield commons

    @contextmanager
    def open_api(self) -> Iterator[CommonsApi]:
        """The API of the home: our own if we can own it, else the running node's."""
        with self.open_owner() as owner:
            yield LocalApi(owner) if isinstance(owner, Commons) else owner

    # -- sync -------------------------------------------------------------------

    def node(self, commons: Commons, **options: Any) -> Node:
        """A gossip node over `commons`; `options` are the node's (listen, peers...)."""
        from sync.http.node import Node

        return Node(commons, rng=random.Random(), clock=self._clock, **options)

    # -- the app ------------------------------------------------------------------

    def node_factory(
        self, listen: str, peers: list[str]
    ) -> tuple[Callable[[Commons], RunningNode] | None, str | None]:
        """How to build the node the app runs, or why there is none."""
        try:
            import sync.http.node  # noqa: F401
        except ImportError as exc:
            return None, f"this build has no gossip node ({exc.name} is missing)"

        def make(commons: Commons) -> RunningNode:
            node: RunningNode = self.node(commons, listen=listen, peers=peers)
            return node

        return make, None

    def backend(self, *, offline: bool, listen: str, peers: list[str]) -> Backend:
        """What the app's screens call: this home (made if new) with its node, or the
        node that already owns it."""
        from tui.backend import open_backend

        make_node: Callable[[Commons], RunningNode] | None = None
        note: str | None = "the app was started with --offline"
        if not offline:
            make_node, note = self.node_factory(listen, peers)
        return open_backend(
            self.paths,
            clock=self._clock,
            open_home=lambda: Commons.init(self.paths, **self._commons_options()),
            make_node=make_node,
            node_note=note,
        )
