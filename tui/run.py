"""`commons` with no command: open the home (creating a seeded one), run the app."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from commons.home import HomePaths, default_home
from commons.service import Commons
from tui.backend import NodeLike, open_backend

log = logging.getLogger(__name__)

LOG_FILE = "tui.log"


def now() -> int:
    return int(time.time())


def node_factory(
    listen: str, peers: list[str]
) -> tuple[Callable[[Commons], NodeLike] | None, str | None]:
    """How to build the node the app runs, or why there is none."""
    try:
        import random

        from sync.node import Node
    except ImportError as exc:
        return None, f"this build has no gossip node ({exc.name} is missing)"

    def make(commons: Commons) -> NodeLike:
        node: NodeLike = Node(
            commons, listen=listen, peers=peers, rng=random.Random(), clock=now
        )
        return node

    return make, None


@contextmanager
def log_to_file(path: Path) -> Iterator[None]:
    """While the app owns the terminal, log lines go to a file, not over the screen."""
    root = logging.getLogger()
    saved = root.handlers[:]
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers = [handler]
    try:
        yield
    finally:
        root.handlers = saved
        handler.close()


def main_command(args: argparse.Namespace) -> int:
    from tui.app import CommonsApp  # textual loads only when the app opens

    paths = HomePaths(default_home(args.home))
    make_node: Callable[[Commons], NodeLike] | None = None
    note: str | None = "the app was started with --offline"
    if not getattr(args, "offline", False):
        listen = getattr(args, "app_listen", None) or "127.0.0.1:0"
        make_node, note = node_factory(listen, list(getattr(args, "app_peers", None) or []))
    with log_to_file(paths.root / LOG_FILE):
        backend = open_backend(paths, clock=now, make_node=make_node, node_note=note)
        try:
            CommonsApp(backend, warm_index=True).run()
        finally:
            backend.close()
    return 0
