"""Benchmark: how fast one new object reaches every node of a gossip network.

Starts n real nodes (aiohttp on loopback, each with its own home) in one event
loop. Each node is bootstrapped with its ring neighbour and two random nodes
and learns the rest from signed peer records. After a warm-up that lets
membership settle, one node publishes a new document and we count until every
node holds it:

- "rounds": anti-entropy only (eager offers off). In each round every node
  runs one gossip round (push-pull with `fanout` peers), all at once.
- "eager": eager offers on, plus a gossip round every `interval` seconds;
  also reports the share of nodes the offers alone reached before the
  first round.

Printed as JSON beside log2(n) + ln(n), the classic bound for push gossip
(Frieze and Grimmett; Pittel) with one contact per round.

    python bench/convergence.py [--sizes 8 32] [--trials 5] [--fanout 3] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("COMMONS_EMBEDDER", "fake")  # measure gossip, not the embedding model

from commons.search.embedding import load_embedder  # noqa: E402
from commons.service import Commons  # noqa: E402
from commons.storage.home import HomePaths  # noqa: E402
from sync.http.node import Node  # noqa: E402


def now() -> int:
    return int(time.time())


async def everyone_has(nodes: list[Node], oid: bytes) -> bool:
    found = await asyncio.gather(*(asyncio.to_thread(n.store.has, oid) for n in nodes))
    return all(found)


async def coverage(nodes: list[Node], oid: bytes) -> float:
    found = await asyncio.gather(*(asyncio.to_thread(n.store.has, oid) for n in nodes))
    return sum(found) / len(nodes)


async def lockstep_round(nodes: list[Node]) -> None:
    await asyncio.gather(*(n.sync_now() for n in nodes))


async def settle(nodes: list[Node], max_rounds: int = 60) -> int:
    """Rounds until every node holds the same objects (peer records, profiles)."""
    for rounds in range(1, max_rounds + 1):
        await lockstep_round(nodes)
        totals = await asyncio.gather(*(asyncio.to_thread(n.store.count) for n in nodes))
        if len(set(totals)) == 1:
            return rounds
    raise RuntimeError(f"the network did not settle in {max_rounds} rounds")


async def trial(nodes: list[Node], rng: random.Random, *, eager: bool, interval: float,
                number: int) -> dict[str, Any]:
    for node in nodes:
        node.eager = eager
    origin = rng.choice(nodes)
    started = time.perf_counter()
    obj, _ = await asyncio.to_thread(
        origin.commons.add_document, title=f"News {number} ({'eager' if eager else 'rounds'})",
        body=f"Item {number} of the convergence benchmark.",
    )
    rounds = 0
    reached_before_rounds: float | None = None
    while not await everyone_has(nodes, obj.id):
        if eager:
            # Give the offers a moment, as a node's own timer would, then a round.
            deadline = time.perf_counter() + interval
            while time.perf_counter() < deadline and not await everyone_has(nodes, obj.id):
                await asyncio.sleep(0.01)
            if reached_before_rounds is None:
                reached_before_rounds = await coverage(nodes, obj.id)
            if await everyone_has(nodes, obj.id):
                break
        await lockstep_round(nodes)
        rounds += 1
        if rounds > 100:
            raise RuntimeError("an object did not spread in 100 rounds")
    seconds = time.perf_counter() - started
    if reached_before_rounds is None:
        reached_before_rounds = 1.0 if rounds == 0 else 1 / len(nodes)
    return {"rounds": rounds, "seconds": seconds, "offers_coverage": reached_before_rounds}


async def network(n: int, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    rng = random.Random(args.seed * 1000 + n)
    homes = [Commons.init(HomePaths(root / f"n{n}-{i}"), clock=now, name=f"node{i}",
                          embedder=load_embedder(os.environ.get("COMMONS_EMBEDDER")))
             for i in range(n)]
    nodes = [Node(h, rng=random.Random(rng.random()), clock=now, round_interval=3600.0,
                  fanout=args.fanout, name=f"node{i}") for i, h in enumerate(homes)]
    try:
        for node in nodes:
            await node.start()
        for i, node in enumerate(nodes):
            others = [j for j in range(n) if j != i]
            for j in {(i - 1) % n, *rng.sample(others, min(2, len(others)))}:
                await node.add_peer(nodes[j].url)
        await asyncio.gather(*(node.index_ready() for node in nodes))
        warmup = await settle(nodes)
        results: dict[str, Any] = {"n": n, "log2_n_plus_ln_n": round(math.log2(n) + math.log(n), 2),
                                   "warmup_rounds": warmup}
        for mode in ("rounds", "eager"):
            runs = [await trial(nodes, rng, eager=mode == "eager", interval=args.interval,
                                number=t) for t in range(args.trials)]
            await settle(nodes)  # let the trials' own objects finish spreading
            rounds = [r["rounds"] for r in runs]
            seconds = [r["seconds"] for r in runs]
            results[mode] = {
                "rounds_mean": round(statistics.mean(rounds), 2),
                "rounds_max": max(rounds),
                "seconds_mean": round(statistics.mean(seconds), 3),
                "seconds_max": round(max(seconds), 3),
            }
            if mode == "eager":
                results[mode]["coverage_by_offers_alone_mean"] = round(
                    statistics.mean(r["offers_coverage"] for r in runs), 3)
        known = [len([p for p in node.peers() if p.state == "active"]) for node in nodes]
        results["peers_known_mean"] = round(statistics.mean(known), 1)
        return results
    finally:
        for node in nodes:
            await node.stop()
        for home in homes:
            home.close()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="commons-bench-") as tmp:
        runs = [await network(n, args, Path(tmp)) for n in args.sizes]
    return {
        "benchmark": "convergence",
        "fanout": args.fanout,
        "trials": args.trials,
        "eager_interval_seconds": args.interval,
        "embedder": os.environ.get("COMMONS_EMBEDDER"),
        "results": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--fanout", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.5,
                        help="seconds between rounds in the eager mode")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
