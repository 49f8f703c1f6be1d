"""The `commons` command: the top of the stack, where the three layers meet.

Each layer registers its own commands (`commons.cli`, `sync.cli`); this module
adds the app's options, reads the settings once and hands every handler the
composition root (`tui.root.Root`). Handlers are imported only when their
command runs, so `commons ls` does not load the embedding model or textual.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from typing import Any

import commons.cli
import sync.cli
from commons.model.errors import CommonsError
from commons.settings import Settings
from tui.root import Root

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="commons",
        description="A knowledge commons that no one owns. With no command, opens the app.",
    )
    parser.add_argument(
        "--home",
        metavar="DIR",
        help="the commons home (default: $COMMONS_HOME, else ~/.local/share/commons)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more")
    # The app's own options (no command): the node it runs while it is open.
    parser.add_argument(
        "--listen",
        dest="app_listen",
        metavar="HOST:PORT",
        help="where the app's node listens (default: the `app.listen` setting; else a free"
        " port on 127.0.0.1, kept in the config for the next launch)",
    )
    parser.add_argument(
        "--peer",
        dest="app_peers",
        action="append",
        default=[],
        metavar="URL",
        help="a peer for the app's node (repeatable)",
    )
    parser.add_argument("--offline", action="store_true", help="open the app without a node")
    parser.set_defaults(handler="tui.run:main_command")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    commons.cli.register(sub)
    sync.cli.register(sub)
    return parser


def resolve_handler(spec: str) -> Callable[[argparse.Namespace, Any], int]:
    module_name, _, function = spec.partition(":")
    module = importlib.import_module(module_name)
    handler: Callable[[argparse.Namespace, Any], int] = getattr(module, function)
    return handler


# Commands that run until stopped: they say what they do at INFO without -v.
LONG_RUNNING = ("sync.cli:serve", "sync.cli:mirror")
OUR_LOGGERS = ("commons", "sync", "tui")


def configure_logging(args: argparse.Namespace) -> None:
    verbose = min(args.verbose, 2)
    if args.handler in LONG_RUNNING:
        logging.basicConfig(
            level=logging.WARNING - 10 * verbose,
            format="%(asctime)s %(levelname)-7s %(message)s",
            datefmt="%Y-%m-%d %H:%M:%S",
        )
        for name in OUR_LOGGERS:  # ours at INFO; libraries stay quiet unless -v
            logging.getLogger(name).setLevel(logging.INFO - 10 * (verbose > 1))
        return
    logging.basicConfig(
        level=logging.WARNING - 10 * verbose,
        format="%(levelname)s %(name)s: %(message)s",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args)
    try:
        settings = Settings.load(vars(args), os.environ)
        return resolve_handler(args.handler)(args, Root(settings))
    except CommonsError as exc:
        print(f"commons: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("commons: interrupted", file=sys.stderr)
        return 130
    except (OSError, sqlite3.Error) as exc:  # a file or disk problem no handler foresaw
        log.debug("the command failed", exc_info=True)
        print(f"commons: {describe_failure(exc)}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


_WAYS_OUT = {
    errno.EACCES: "check its permissions, or choose a place you can write to",
    errno.EPERM: "check its permissions, or choose a place you can write to",
    errno.EROFS: "the disk is read-only; choose a writable place",
    errno.ENOSPC: "the disk is full; free some space and try again",
    errno.EDQUOT: "your disk quota is used up; free some space and try again",
}


def describe_failure(exc: OSError | sqlite3.Error) -> str:
    """One line for a failure of the file system or the database, and the way out."""
    if isinstance(exc, sqlite3.Error):
        text = str(exc)
        if "full" in text:
            return f"the database cannot grow ({text}); free some disk space and try again"
        return (f"the database failed ({text}); `commons check` says what is wrong and"
                " `commons check --salvage FILE` saves what still verifies")
    where = f" {exc.filename}" if exc.filename else ""
    way_out = _WAYS_OUT.get(exc.errno or 0, "run with -v for details")
    return f"cannot use{where}: {exc.strerror or exc}; {way_out}"


if __name__ == "__main__":
    sys.exit(main())
