"""`commons` with no command: open the home (creating a seeded one), run the app."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tui.root import Root

log = logging.getLogger(__name__)

LOG_FILE = "tui.log"


@contextmanager
def log_to_file(path: Path) -> Iterator[None]:
    """While the app owns the terminal, log lines go to a file, not over the screen."""
    root = logging.getLogger()
    saved = root.handlers[:]
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers = [handler]
    level = root.level
    root.setLevel(min(level, logging.INFO))  # what the node did is worth keeping
    try:
        yield
    finally:
        root.handlers = saved
        root.setLevel(level)
        handler.close()


def main_command(args: argparse.Namespace, root: Root) -> int:
    from tui.app import CommonsApp  # textual loads only when the app opens

    with log_to_file(root.paths.root / LOG_FILE):
        backend = root.backend(
            offline=bool(getattr(args, "offline", False)),
            listen=root.settings.app_listen or "127.0.0.1:0",  # the flag, else the config
            peers=list(getattr(args, "app_peers", None) or []),
        )
        try:
            CommonsApp(backend, warm_index=True).run()
        finally:
            backend.close()
    return 0
