"""Handlers of the foundation's commands: init, id, add, ls, show, retract, export, import."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from commons.api import CommonsApi, LocalApi
from commons.errors import CommonsError, HomeLocked, IngestError
from commons.home import HomePaths, default_home
from commons.ingest import Extracted, extract_file, extract_text
from commons.remote import RemoteApi
from commons.service import Commons


def now() -> int:
    return int(time.time())


def home_paths(args: argparse.Namespace) -> HomePaths:
    return HomePaths(default_home(args.home))


@contextmanager
def open_owner(args: argparse.Namespace) -> Iterator[Commons | RemoteApi]:
    """The home itself if no process owns it, else the API of the node that does."""
    paths = home_paths(args)
    paths.require()
    try:
        commons = Commons(paths, clock=now)
    except HomeLocked:
        info = paths.node_info()
        if info is None:
            raise
        yield RemoteApi.from_node_info(info)
        return
    with commons:
        yield commons


@contextmanager
def open_api(args: argparse.Namespace) -> Iterator[CommonsApi]:
    """The API of the home: our own if we can own it, else the running node's."""
    with open_owner(args) as owner:
        yield LocalApi(owner) if isinstance(owner, Commons) else owner


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def fmt_time(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d")


def author_label(item: dict[str, Any]) -> str:
    name = item.get("author_name") or "?"
    return f"{name} ({item['author'][:8]})"


# -- handlers -----------------------------------------------------------------


def init(args: argparse.Namespace) -> int:
    paths = home_paths(args)
    existed = paths.exists()
    with Commons.init(paths, clock=now, name=args.name) as commons:
        who = commons.whoami()
        docs = commons.store.count("document")
    verb = "uses" if existed else "created"
    print(f"{verb} home {who['home']}")
    print(f"your key:  {who['public_key']}")
    print(f"your name: {who['name']}")
    print(f"documents: {docs}")
    if not existed:
        print("next: `commons ls` to browse, `commons add FILE` to contribute")
    return 0


def whoami(args: argparse.Namespace) -> int:
    with open_api(args) as api:
        who = api.whoami()
    if args.json:
        print_json(who)
    else:
        print(f"key:  {who['public_key']}\nname: {who['name']}\nhome: {who['home']}")
    return 0


def read_input(path: str, title: str | None) -> Extracted:
    if path == "-":
        data = sys.stdin.buffer.read()
        return extract_text(data, "standard input", "text/markdown")
    return extract_file(Path(path))


def add(args: argparse.Namespace) -> int:
    if args.title and len(args.paths) > 1:
        raise CommonsError("--title names one document; give one file with it")
    extracted: list[Extracted] = []
    for path in args.paths:  # read everything first: a bad file adds nothing
        extracted.append(read_input(path, args.title))
    results = []
    from commons.ask_command import indexing  # batched indexing, progress bar (issue 3)

    with open_api(args) as api, indexing(api, [item.body for item in extracted]):
        for item in extracted:
            results.append(
                api.add(
                    item,
                    title=args.title,
                    tags=args.tags,
                    licence=args.licence,
                    replaces=args.replaces,
                )
            )
    if args.json:
        print_json(results)
    else:
        for r in results:
            print(f"{r['status']:9} {r['id'][:12]}  {r['title']}")
    return 0


def ls(args: argparse.Namespace) -> int:
    with open_api(args) as api:
        docs = api.documents(author=args.author, tag=args.tag)
    if args.json:
        print_json(docs)
        return 0
    if not docs:
        print("no documents match" if (args.author or args.tag) else "the commons is empty")
        return 0
    for d in docs:
        tags = f"  [{', '.join(d['tags'])}]" if d["tags"] else ""
        print(f"{d['id'][:12]}  {fmt_time(d['created_at'])}  {author_label(d)}  {d['title']}{tags}")
    return 0


def show(args: argparse.Namespace) -> int:
    with open_api(args) as api:
        item = api.show(args.id)
    if args.json:
        print_json([item])
        return 0
    obj = item["object"]
    print(f"id:       {item['id']}")
    print(f"kind:     {item['kind']}")
    print(f"author:   {author_label(item)} {item['author']}")
    print(f"created:  {fmt_time(item['created_at'])}")
    print(f"origin:   {item['origin']}")
    print("signature: verified when stored")
    if item["kind"] == "document":
        print(f"title:    {item['title']}")
        print(f"tags:     {', '.join(item['tags']) or '-'}")
        print(f"licence:  {item['licence']}")
        print()
        print(obj["body"])
    else:
        fields = {k: v for k, v in obj.items() if k not in ("id", "sig", "kind", "author")}
        print_json(fields)
    return 0


def retract(args: argparse.Namespace) -> int:
    with open_api(args) as api:
        result = api.retract(args.id, args.reason)
    if args.json:
        print_json(result)
    else:
        print(f"retracted {result['target'][:12]} (retraction {result['id'][:12]})")
    return 0


def export(args: argparse.Namespace) -> int:
    path = Path(args.file).expanduser().resolve()
    with open_api(args) as api:
        result = api.export(str(path), args.authors)
    print(f"wrote {result['objects']} objects to {path}")
    return 0


def import_(args: argparse.Namespace) -> int:
    path = Path(args.file).expanduser().resolve()
    if not path.is_file():
        raise IngestError(f"{args.file} is not a file; give the path of a bundle")
    with open_api(args) as api:
        report = api.import_bundle(str(path))
    if args.json:
        print_json(report)
    else:
        print(
            f"accepted {report['accepted']}, duplicate {report['duplicate']},"
            f" refused {report['refused']}"
        )
        for reason in report["reasons"]:
            print(f"  line {reason['line']}: {reason['reason']}", file=sys.stderr)
    return 0 if report["refused"] == 0 else 2
