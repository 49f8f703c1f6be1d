"""Rates of signing, verifying and storing objects (objects per second), as JSON.

python bench/objects.py [--count N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from commons.model.identity import Identity
from commons.model.objects import Document, parse, sign
from commons.storage.store import ObjectStore

NOW = 1_800_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=5000)
    args = parser.parse_args()
    key = Identity(bytes(range(32)))
    contents = [
        Document(
            author=key.public_key,
            created_at=NOW + i,
            title=f"Document {i}",
            body=("A paragraph of ordinary text about the commons. " * 20) + str(i),
            tags=("bench",),
        )
        for i in range(args.count)
    ]

    start = time.perf_counter()
    signed = [sign(c, key) for c in contents]
    sign_s = time.perf_counter() - start

    wires = [o.to_bytes() for o in signed]
    start = time.perf_counter()
    parsed = [parse(w, now=NOW + args.count) for w in wires]
    verify_s = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        store = ObjectStore(Path(tmp) / "bench.db")
        start = time.perf_counter()
        for obj in parsed:
            store.put(obj, now=NOW + args.count, origin="bench")
        put_s = time.perf_counter() - start
        store.close()

    print(
        json.dumps(
            {
                "objects": args.count,
                "object_bytes": len(wires[0]),
                "sign_per_s": round(args.count / sign_s),
                "parse_and_verify_per_s": round(args.count / verify_s),
                "store_put_per_s": round(args.count / put_s),
                "note": "store put verifies again and commits each object in its own transaction",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
