"""Handlers of the block list commands: block, unblock, blocked."""

from __future__ import annotations

import argparse

from commons.cli import Context
from commons.cli.output import print_json
from commons.display import author_label, fmt_date


def block(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.open_api() as api:
        result = api.block(args.key, args.reason)
    who = author_label(result["author"], result["name"])
    if result["changed"]:
        print(f"blocked {who} {result['author']}: their objects are hidden here, not served,"
              " and new ones are declined")
    else:
        print(f"{who} {result['author']} was already blocked")
    return 0


def unblock(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.open_api() as api:
        result = api.unblock(args.key)
    print(f"unblocked {author_label(result['author'], result['name'])} {result['author']}")
    return 0


def blocked(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.open_api() as api:
        rows = api.blocked()
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no one is blocked")
        return 0
    for row in rows:
        reason = f"  ({row['reason']})" if row["reason"] else ""
        print(f"{row['author']}  {fmt_date(row['at'])}  {author_label(row['author'], row['name'])}"
              f"{reason}")
    return 0
