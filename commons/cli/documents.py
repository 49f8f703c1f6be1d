"""Handlers of the foundation's commands: init, id, add, ls, show, retract, export, import."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from commons.cli import Context
from commons.cli.output import item_author, print_json
from commons.display import fmt_date, short_id
from commons.ingest import Extracted, extract_file, extract_text, files_under
from commons.model.errors import CommonsError, IngestError
from commons.model.objects import check_tags
from commons.service import LICENCE_NOT_STATED

SHOWN_REASONS = 20

# -- handlers -----------------------------------------------------------------


def init(args: argparse.Namespace, ctx: Context) -> int:
    if ctx.paths.exists():
        with ctx.open_api() as api:
            who = api.whoami()
        print(f"a home already exists at {who['home']}; nothing was changed")
        print(f"your key:  {who['public_key']}")
        print(f"your name: {who['name'] or '(not set)'}")
        if args.name and args.name.strip() != who["name"]:
            print(f"to change your name: `commons name {args.name.strip()}`")
        print("a second identity needs its own home: `commons --home DIR init`")
        return 0
    from commons.api import LocalApi
    from commons.cli.ask import indexing

    with ctx.init_commons(name=args.name or ctx.settings.name) as commons:
        who = commons.whoami()
        docs = commons.store.count("document")
        with indexing(LocalApi(commons)):  # the first question need not wait for it
            commons.search_index()
    print(f"created home {who['home']}")
    print(f"your key:  {who['public_key']}")
    print(f"your name: {who['name']}  (change it with `commons name NEW`)")
    print(f"documents: {docs}")
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


def expand_paths(paths: list[str], recursive: bool) -> list[str]:
    """The files to add: each path given, with the readable files under each directory
    when `recursive`. Says on stderr which files under a directory were skipped."""
    out: list[str] = []
    for given in paths:
        path = Path(given).expanduser()
        if given == "-" or not recursive or not path.is_dir():
            out.append(given)
            continue
        readable, skipped = files_under(path)
        if skipped:
            names = ", ".join(str(p.relative_to(path)) for p in skipped[:5])
            more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
            print(
                f"{given}: skipping {plural(len(skipped), 'file')} that cannot be read"
                f" ({names}{more})",
                file=sys.stderr,
            )
        if not readable:
            raise IngestError(f"{given} holds no files that can be read; nothing was added")
        out += [str(p) for p in readable]
    return out


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


LICENCE_REMINDER = (
    "sign only your own work, or work whose licence allows you to share it;"
    " the licence goes with it: {licence}"
)


def add(args: argparse.Namespace, ctx: Context) -> int:
    check_tags(args.tags)  # before reading or storing anything
    paths = expand_paths(args.paths, args.recursive)
    if args.title and len(paths) > 1:
        raise CommonsError("--title names one document; give one file with it")
    extracted: list[Extracted] = []
    for path in paths:  # read everything first: a bad file adds nothing
        extracted.append(read_input(path, args.title))
    for item in extracted:
        if item.note:
            print(f"note: {item.note}", file=sys.stderr)
    licence = ctx.settings.licence
    shown = licence or (
        f"{LICENCE_NOT_STATED!r} (choose one with --licence, or set your default with"
        " `commons config set licence CC-BY-4.0`)"
    )
    print(LICENCE_REMINDER.format(licence=shown), file=sys.stderr)
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
                    licence=licence,
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
    duplicates = [r for r in results if r["status"] == "duplicate"]
    if duplicates:
        r = duplicates[0]
        print(
            f"{len(duplicates)} already in the commons, unchanged; to change the tags or licence"
            f" of one, publish a new version: `commons add FILE --replaces {short_id(r['id'])}"
            " --tag ... --licence ...`",
            file=sys.stderr,
        )
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
    newer = item.get("replaced_by") or []
    if newer:
        print(f"an older version: {short_id(newer[0])} replaces it"
              f" (`commons show {short_id(newer[0])}`)")
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


def search(args: argparse.Namespace, ctx: Context) -> int:
    query = " ".join(args.query)
    if args.limit <= 0:
        raise CommonsError("--limit must be at least 1")
    with ctx.open_api() as api:
        hits = api.search(query, limit=args.limit, author=args.author, tag=args.tag)
    if args.json:
        print_json(hits)
        return 0
    if not hits:
        print(f"no document holds the words {query!r}; `commons ask` finds related passages too")
        return 0
    for d in hits:
        print(f"{short_id(d['id'])}  {fmt_date(d['created_at'])}  {item_author(d)}  {d['title']}")
        print(f"    {d['snippet']}")
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
        reasons = report["reasons"][:SHOWN_REASONS]
        for reason in reasons:
            print(f"  line {reason['line']}: {reason['reason']}", file=sys.stderr)
        if report["refused"] > len(reasons):
            print(f"  ...and {report['refused'] - len(reasons)} more refused lines"
                  " (--json lists the first 100)", file=sys.stderr)
    return 0 if report["refused"] == 0 else 2
