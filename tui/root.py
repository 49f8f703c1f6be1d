"""The composition root: the one place that builds the object graph.

From one `Settings` (read once, from flags, environment and the home's config
file) it builds the home, its store and identity (`Commons`), the embedder, the
vector store, the answerer's generator, the gossip node and the app. No module
below this one reads the environment or picks an implementation by itself.
"""

from __future__ import annotations

import getpass
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from commons.api import CommonsApi, LocalApi
from commons.config_file import set_value
from commons.model.errors import HomeLocked
from commons.remote import RemoteApi
from commons.service import Commons
from commons.settings import Settings
from commons.storage.home import HomePaths

if TYPE_CHECKING:
    from commons.search.embedding import Embedder
    from commons.search.vectors import VectorFactory
    from sync.api import RunningNode
    from sync.http.node import Node
    from tui.backend import Backend


def wall_clock() -> int:
    return int(time.time())


def login_name() -> str:
    """The name a new home's profile takes when none is given: the login's."""
    try:
        return getpass.getuser() or "anonymous"
    except Exception:  # no user database entry in some containers
        return "anonymous"


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

            self._embedder = load_embedder(
                self.settings.embedder, cache_dir=self.settings.cache
            )
        return self._embedder

    def vectors(self) -> VectorFactory:
        """Where vectors are kept: Chroma in the home's index/, or a Chroma server."""
        from commons.search.chroma import chroma_vectors

        return chroma_vectors(str(self.paths.index), self.settings.index_url)

    def _commons_options(self) -> dict[str, Any]:
        return {
            "clock": self._clock,
            "embedder_factory": self.embedder,
            "index_url": self.settings.index_url,
            "vectors": self.vectors(),
        }

    def open_commons(self) -> Commons:
        """Own the existing home (it must exist)."""
        self.paths.require()
        return Commons(self.paths, **self._commons_options())

    def init_commons(self, *, name: str | None = None) -> Commons:
        """Create the home (key, store, profile, seeds) if needed, and own it."""
        return Commons.init(
            self.paths, name=name, default_name=login_name(), **self._commons_options()
        )

    def _own_or_reach(self, open_home: Callable[[], Commons]) -> Commons | RemoteApi:
        """Own the home, or, if a node owns it, that node's local API."""
        try:
            return open_home()
        except HomeLocked:
            info = self.paths.node_info()
            if info is None:
                raise
            return RemoteApi.from_node_info(info)

    @contextmanager
    def open_owner(self) -> Iterator[Commons | RemoteApi]:
        """The home itself if no process owns it, else the API of the node that does."""
        owner = self._own_or_reach(self.open_commons)
        if isinstance(owner, RemoteApi):
            yield owner
            return
        with owner:
            yield owner

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
        from tui.backend import Backend

        fresh = not self.paths.exists()  # a first run: the app asks for a display name
        owner = self._own_or_reach(
            lambda: Commons.init(
                self.paths, name=self.settings.name, default_name=None,
                **self._commons_options(),
            )
        )
        home = self.paths.root
        if isinstance(owner, RemoteApi):
            who = owner.whoami()
            return Backend(
                owner,
                clock=self._clock,
                home=home,
                public_key=who["public_key"],
                remote_url=owner.node_url or "?",
                default_licence=self.settings.licence,
            )
        make_node: Callable[[Commons], RunningNode] | None = None
        note: str | None = "the app was started with --offline"
        if not offline:
            make_node, note = self.node_factory(listen, peers)
        try:
            node = make_node(owner) if make_node is not None else None
        except BaseException:
            owner.close()
            raise
        remember: Callable[[str], None] | None = None
        if listen.endswith(":0") and self.settings.app_listen is None:
            # Peers keep our address: listen on the same port at the next launch.
            def remember(address: str) -> None:
                set_value(self.settings.home, "app.listen", address)

        return Backend(
            LocalApi(owner),
            clock=self._clock,
            home=home,
            public_key=owner.public_key.hex(),
            commons=owner,
            node=node,
            node_note=note if node is None else None,
            default_licence=self.settings.licence,
            fresh=fresh,
            remember_listen=remember,
        )
