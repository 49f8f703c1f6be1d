"""The `commons` command: the one place where core, sync and UI are wired together.

Handlers are named as "module:function" and imported only when their command
runs, so `commons ls` does not pay for loading the embedding model or textual.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from commons.errors import CommonsError

Handler = Callable[[argparse.Namespace], int]

DEFAULT_LISTEN = "127.0.0.1:7400"


def _command(
    sub: Any, name: str, handler: str, help_text: str, **kwargs: Any
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help_text, description=help_text, **kwargs
    )
    parser.set_defaults(handler=handler)
    return parser


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _node_flags(parser: argparse.ArgumentParser, *, name: bool = True) -> None:
    """Options `serve` and `mirror` share (the sync engineer's)."""
    parser.add_argument(
        "--interval",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="seconds between gossip rounds (default 30)",
    )
    parser.add_argument(
        "--advertise",
        action="append",
        default=[],
        metavar="URL",
        help="the address peers should use to reach this node (repeatable; default: --listen)",
    )
    if name:
        parser.add_argument("--name", help="this node's public name in its peer record")


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
        default="127.0.0.1:0",
        metavar="HOST:PORT",
        help="where the app's node listens (default: a free port on 127.0.0.1)",
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

    p = _command(sub, "init", "commons.commands:init", "create a home with a fresh identity")
    p.add_argument("--name", help="your display name, signed into your profile")

    p = _command(sub, "id", "commons.commands:whoami", "show your public key, name and home")
    _json_flag(p)

    p = _command(sub, "add", "commons.commands:add", "sign and add files (or - for stdin)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files to add; - reads standard input")
    p.add_argument("--title", help="title (default: the first heading or line)")
    p.add_argument("--tag", action="append", default=[], dest="tags", help="a tag (repeatable)")
    p.add_argument("--licence", default="CC-BY-4.0", help="licence (default: CC-BY-4.0)")
    p.add_argument("--replaces", metavar="ID", help="publish as a new version of your document ID")
    _json_flag(p)

    p = _command(sub, "ls", "commons.commands:ls", "list the documents in the commons")
    p.add_argument("--author", help="only this author (key, key prefix or display name)")
    p.add_argument("--tag", help="only documents with this tag")
    _json_flag(p)

    p = _command(sub, "show", "commons.commands:show", "show one object (8+ hex chars of its id)")
    p.add_argument("id", metavar="ID")
    _json_flag(p)

    p = _command(sub, "retract", "commons.commands:retract", "withdraw one of your own objects")
    p.add_argument("id", metavar="ID")
    p.add_argument("--reason", help="a short public reason")
    _json_flag(p)

    p = _command(sub, "export", "commons.commands:export", "write a bundle of signed objects")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--author", action="append", default=[], dest="authors", help="only this author")

    p = _command(sub, "import", "commons.commands:import_", "verify and add a bundle's objects")
    p.add_argument("file", metavar="FILE")
    _json_flag(p)

    p = _command(sub, "ask", "commons.ask_command:ask", "ask the commons a question, offline")
    p.add_argument("question", nargs="+", metavar="QUESTION")
    p.add_argument(
        "--author", action="append", default=[], dest="authors", help="only these authors"
    )
    p.add_argument("--tag", action="append", default=[], dest="tags", help="only these tags")
    p.add_argument("--llm", metavar="URL", help="an OpenAI-compatible endpoint to write the answer")
    p.add_argument("--model", help="the model name for --llm")
    p.add_argument("--gguf", metavar="PATH", help="a local GGUF model (needs the llm extra)")
    p.add_argument("-k", type=int, default=8, help="passages to retrieve (default 8)")
    _json_flag(p)

    _command(sub, "reindex", "commons.ask_command:reindex", "rebuild the search indexes")

    p = _command(sub, "serve", "sync.commands:serve", "run a node: gossip and the local API")
    p.add_argument("--listen", default=DEFAULT_LISTEN, help=f"HOST:PORT (default {DEFAULT_LISTEN})")
    p.add_argument("--peer", action="append", default=[], dest="peers", help="a peer URL")
    p.add_argument("--index-url", help="keep vectors in a Chroma server at this URL")
    _node_flags(p)

    p = _command(sub, "mirror", "sync.commands:mirror", "run an always-on community mirror")
    p.add_argument("--listen", default="0.0.0.0:7400", help="HOST:PORT (default 0.0.0.0:7400)")
    p.add_argument("--peer", action="append", default=[], dest="peers", help="a peer URL")
    p.add_argument("--policy", metavar="FILE", help="the accept policy (JSON)")
    p.add_argument("--name", help="the mirror's public name")
    p.add_argument("--index-url", help="keep vectors in a Chroma server at this URL")
    _node_flags(p, name=False)

    peers = _command(sub, "peers", "sync.commands:peers_ls", "list, add or remove peers")
    peer_sub = peers.add_subparsers(title="peer commands", metavar="ACTION")
    p = _command(peer_sub, "ls", "sync.commands:peers_ls", "list known peers")
    _json_flag(p)
    peers.set_defaults(json=False)
    p = _command(peer_sub, "add", "sync.commands:peers_add", "add a peer by URL")
    p.add_argument("url", metavar="URL")
    p = _command(peer_sub, "rm", "sync.commands:peers_rm", "remove a peer")
    p.add_argument("url", metavar="URL")

    p = _command(sub, "sync", "sync.commands:sync_once", "reconcile once with one peer, then exit")
    p.add_argument("url", metavar="URL")
    _json_flag(p)
    return parser


def resolve_handler(spec: str) -> Handler:
    module_name, _, function = spec.partition(":")
    module = importlib.import_module(module_name)
    handler: Handler = getattr(module, function)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return resolve_handler(args.handler)(args)
    except CommonsError as exc:
        print(f"commons: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("commons: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
