"""Handlers of the foundation's commands: init, id, add, ls, show, retract, export, import."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from commons.cli import Context
from commons.cli.output import item_author, print_json
from commons.display import fmt_date, short_id
from commons.ingest import Extracted, extract_file, extract_text
from commons.model.errors import CommonsError, IngestError

# -- handlers -----------------------------------------------------------------


def init(args: argparse.Namespace, ctx: Context) -> int:
    existed = ctx.paths.exists()
    from commons.api import LocalApi
    from commons.cli.ask import indexing

    with ctx.init_commons(name=args.name) as commons:
        who = commons.whoami()
        docs = commons.store.count("document")
        with indexing(LocalApi(commons)):  # the first question need not wait for it
            commons.search_index()
    verb = "uses" if existed else "created"
    print(f"{verb} home {who['home']}")
    print(f"your key:  {who['public_key']}")
    print(f"your name: {who['name']}")
    print(f"documents: {docs}")
    if not existed:
        print("next: `commons ls` to browse, `commons add FILE` to contribute")
    return 0


def whoami(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.open_api() as api:
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


def add(args: argparse.Namespace, ctx: Context) -> int:
    if args.title and len(args.paths) > 1:
        raise CommonsError("--title names one document; give one file with it")
    extracted: list[Extracted] = []
    for path in args.paths:  # read everything first: a bad file adds nothing
        extracted.append(read_input(path, args.title))
    results = []
    from commons.cli.ask import indexing  # batched indexing, progress bar (issue 3)

    def say(line: str) -> None:
        if args.json:
            return
        if bar is not None:
            bar.print(line)
        else:
            print(line, flush=True)

    bar = None
    try:
        with ctx.open_api() as api, indexing(api, [item.body for item in extracted]) as bar:
            for item in extracted:
                result = api.add(
                    item,
                    title=args.title,
                    tags=args.tags,
                    licence=args.licence,
                    replaces=args.replaces,
                )
                results.append(result)
                say(f"{result['status']:9} {short_id(result['id'])}  {result['title']}")
    except KeyboardInterrupt:
        if results:
            print(
                f"commons: interrupted; the {len(results)} documents above are stored and"
                " searchable by words; their vectors are made on the next start",
                file=sys.stderr,
            )
        raise
    if args.json:
        print_json(results)
    return 0


def ls(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.open_api() as api:
        docs = api.documents(author=args.author, tag=args.tag)
    if args.json:
        print_json(docs)
        return 0
    if not docs:
        print("no documents match" if (args.author or args.tag) else "the commons is empty")
        return 0
    for d in docs:
        tags = f"  [{', '.join(d['tags'])}]" if d["tags"] else ""
        when = fmt_date(d["created_at"])
        print(f"{short_id(d['id'])}  {when}  {item_author(d)}  {d['title']}{tags}")
    return 0


def show(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.open_api() as api:
        item = api.show(args.id)
    if args.json:
        print_json([item])
        return 0
    obj = item["object"]
    print(f"id:       {item['id']}")
    print(f"kind:     {item['kind']}")
    print(f"author:   {item_author(item)} {item['author']}")
    print(f"created:  {fmt_date(item['created_at'])}")
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


def retract(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.open_api() as api:
        result = api.retract(args.id, args.reason)
    if args.json:
        print_json(result)
    else:
        print(f"retracted {short_id(result['target'])} (retraction {short_id(result['id'])})")
    return 0


def export(args: argparse.Namespace, ctx: Context) -> int:
    path = Path(args.file).expanduser().resolve()
    with ctx.open_api() as api:
        result = api.export(str(path), args.authors)
    print(f"wrote {result['objects']} objects to {path}")
    return 0


def import_(args: argparse.Namespace, ctx: Context) -> int:
    path = Path(args.file).expanduser().resolve()
    if not path.is_file():
        raise IngestError(f"{args.file} is not a file; give the path of a bundle")
    with ctx.open_api() as api:
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
