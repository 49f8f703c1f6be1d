"""Handler of `commons check [--salvage FILE]`: verify a home's store, save what verifies."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from commons.cli import Context
from commons.cli.output import print_json
from commons.service import write_atomically
from commons.storage.check import check_store


def check(args: argparse.Namespace, ctx: Context) -> int:
    salvage = Path(args.salvage).expanduser().resolve() if args.salvage else None
    report, good = check_store(ctx.paths.db, keep=salvage is not None)
    if salvage is not None:
        report.salvaged = write_atomically(salvage, good)
    if args.json:
        print_json(report.to_json())
        return 0 if report.ok else 1
    print(f"{report.verified} objects verify in {report.path}")
    for line in report.integrity:
        print(f"SQLite: {line}", file=sys.stderr)
    for oid, reason in report.bad:
        print(f"bad object {oid[:16]}…: {reason}", file=sys.stderr)
    if report.unreadable_rows:
        print(f"{report.unreadable_rows} rows could not be read (damaged pages)", file=sys.stderr)
    if report.quarantined:
        print(f"{report.quarantined} objects are quarantined (they stopped verifying; a peer"
              " will send a good copy)")
    if salvage is not None:
        print(f"saved {report.salvaged} objects that verify to {salvage}; `commons import` reads"
              " it into a new home")
    elif not report.ok:
        print("the store is damaged: `commons check --salvage FILE` saves every object that"
              " still verifies, for `commons import` into a fresh --home", file=sys.stderr)
    return 0 if report.ok else 1
