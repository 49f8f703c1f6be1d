"""Benchmark: a mirror's web pages. Page weights, warm answer latency, and a class
asking at once (throughput, share of 503s), with the gossip latency between two
nodes whose only link is the mirror, idle and under that load.

Real processes: one `commons mirror --web` and two `commons serve` nodes, on
loopback. The fake embedder by default (COMMONS_EMBEDDER=minilm for the model).

    python bench/web.py [--clients 50] [--seconds 20] [--asks 40] [--trials 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("COMMONS_EMBEDDER", "fake")

from sync_support import Peer, peers_in  # noqa: E402
from web_load import QUESTIONS, LoadReport, gossip_latency, load  # noqa: E402


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as r:
        body: bytes = r.read()
        return body


def page_weights(base: str) -> dict[str, int]:
    ask = json.loads(fetch(base + "/ask?q=" + quote(QUESTIONS[0]) + "&format=json"))
    cited = ask["citations"][0]
    pages = {
        "/": "/",
        "/ask": "/ask?q=" + quote(QUESTIONS[0]),
        "/search": "/search?q=mirror",
        "/doc": f"/doc/{cited['id']}?start={cited['start']}&end={cited['end']}",
        "/author": f"/author/{cited['author']}",
        "/tag": "/tag/" + quote(json.loads(fetch(base + "/?format=json"))["tags"][0]["tag"]),
        "/about": "/about",
        "/static/commons.css": "/static/commons.css",
    }
    return {name: len(fetch(base + path)) for name, path in pages.items()}


def warm_asks(base: str, n: int) -> dict[str, float]:
    for q in QUESTIONS:  # warm: every question once
        fetch(base + "/ask?q=" + quote(q))
    times = []
    for i in range(n):
        started = time.perf_counter()
        fetch(base + "/ask?q=" + quote(QUESTIONS[i % len(QUESTIONS)]))
        times.append(time.perf_counter() - started)
    times.sort()
    return {"asks": n, "p50_ms": round(1000 * statistics.median(times), 1),
            "p95_ms": round(1000 * times[int(0.95 * (n - 1))], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--asks", type=int, default=40)
    parser.add_argument("--trials", type=int, default=5, help="gossip latency samples")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        spawn = peers_in(Path(tmp))
        make = next(spawn)
        try:
            mirror: Peer = make("mirror").start(
                command="mirror", extra=("--web", "--web-rate", "1000000"))
            a: Peer = make("a").start(mirror)
            b: Peer = make("b").start(mirror)
            gossip_latency(a, b, "warm-up")
            out: dict[str, Any] = {
                "embedder": os.environ["COMMONS_EMBEDDER"],
                "cpus": os.cpu_count(),
                "page_bytes": page_weights(mirror.url),
                "ask_warm": warm_asks(mirror.url, args.asks),
            }
            idle = [gossip_latency(a, b, f"idle {n}") for n in range(args.trials)]
            result: list[LoadReport] = []
            runner = threading.Thread(target=lambda: result.append(asyncio.run(
                load(mirror.url, clients=args.clients, seconds=args.seconds))))
            runner.start()
            time.sleep(1.0)  # let the class start asking
            loaded = []
            while runner.is_alive() and len(loaded) < args.trials:
                loaded.append(gossip_latency(a, b, f"loaded {len(loaded)}"))
            runner.join()
            out["load"] = result[0].to_json()
            idle_ms = 1000 * statistics.median(idle)
            loaded_ms = 1000 * statistics.median(loaded) if loaded else None
            out["gossip_a_to_b_via_mirror"] = {
                "idle_median_ms": round(idle_ms, 1),
                "loaded_median_ms": round(loaded_ms, 1) if loaded_ms else None,
                "loaded_samples": len(loaded),
                "ratio": round(loaded_ms / idle_ms, 2) if loaded_ms else None,
            }
        finally:
            for _ in spawn:
                pass
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
