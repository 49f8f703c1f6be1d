"""Benchmark: reconcile two 100k-item sets that differ by d items.

Runs the real client and server over an in-memory link and prints JSON: per
d, the round trips, the bytes each way, and what sending the whole id list
would cost instead. The differences are split between the two sides (half
only the client has, half only the server has). Deterministic for a seed.

    python bench/reconcile.py [--seed 1] [--items 100000] [--frame-size-limit 60000]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from typing import Any

from sync.protocol.negentropy import DEFAULT_FRAME_SIZE_LIMIT, ID_SIZE, Reconciler, SortedItems

DIFFERENCES = (1, 10, 100, 1000)


def make_sets(
    rng: random.Random, n_items: int, d: int
) -> tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]]:
    """About `n_items` each: shared items, plus d//2 only the client has and the rest of d only
    the server has (so with odd d the server holds one more)."""
    start = 1_700_000_000
    # About a year of timestamps: some collide, so id-prefix bounds are exercised.
    span = 365 * 24 * 3600
    universe = [(start + rng.randrange(span), rng.randbytes(ID_SIZE)) for _ in range(n_items + d)]
    client_only = d // 2
    common = universe[: n_items - client_only]
    rest = universe[len(common) :]
    return common + rest[:client_only], common + rest[client_only:d]


def run(d: int, rng: random.Random, n_items: int, frame_size_limit: int) -> dict[str, Any]:
    client_items, server_items = make_sets(rng, n_items, d)
    began = time.perf_counter()
    client = Reconciler(SortedItems(client_items), frame_size_limit)
    server = Reconciler(SortedItems(server_items), frame_size_limit)
    setup = time.perf_counter() - began
    began = time.perf_counter()

    round_trips = up = down = largest = 0
    have: list[bytes] = []
    need: list[bytes] = []
    message: bytes | None = client.initiate()
    while message is not None:
        up += len(message)
        reply = server.respond(message)
        down += len(reply)
        largest = max(largest, len(message), len(reply))
        round_trips += 1
        message, new_have, new_need = client.reconcile(reply)
        have += new_have
        need += new_need
    seconds = time.perf_counter() - began

    mine = {i for _, i in client_items}
    theirs = {i for _, i in server_items}
    if set(have) != mine - theirs or set(need) != theirs - mine:
        raise SystemExit(f"d={d}: reconciliation gave the wrong answer")

    return {
        "d": d,
        "client_items": len(client_items),
        "server_items": len(server_items),
        "have": len(have),
        "need": len(need),
        "round_trips": round_trips,
        "bytes_client_to_server": up,
        "bytes_server_to_client": down,
        "largest_frame": largest,
        "full_id_list_bytes": ID_SIZE * len(server_items),
        "seconds": round(seconds, 3),  # the exchange itself, both sides
        "seconds_sorting_items": round(setup, 3),  # SortedItems for both sides
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--frame-size-limit", type=int, default=DEFAULT_FRAME_SIZE_LIMIT)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    results = [run(d, rng, args.items, args.frame_size_limit) for d in DIFFERENCES]
    print(
        json.dumps(
            {"seed": args.seed, "frame_size_limit": args.frame_size_limit, "runs": results},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
