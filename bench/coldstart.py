"""Benchmark: cold `commons ask` and cold `commons add` of a small file, and warm asks.

Each cold run is a separate process (`python -m tui ...`) on a home whose index
is already built: wall time and peak RSS (the child's ru_maxrss), median of
`--runs`. Warm: a `commons serve` node owns the home and `--questions` questions
go through its local API (p50, p95 of the latency seen by the client).

    PYTHONPATH=. python bench/coldstart.py [--runs 5] [--questions 50] [--embedder minilm]

Run it with PYTHONPATH pointing at another checkout to measure that code.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

QUESTIONS = [
    "how do I run a community mirror?", "how do I add a file?", "what is a retraction?",
    "how does sync work?", "who can see my documents?", "how do I block an author?",
    "what happens offline?", "how are documents signed?", "what is a peer?",
    "how do I export a bundle?",
]


def measure(argv: list[str], env: dict[str, str], runs: int) -> dict[str, float]:
    walls, peaks = [], []
    for _ in range(runs):
        # A fresh interpreter per run, reporting its own peak RSS.
        wrapped = [sys.executable, "-c", RSS_WRAPPER, *argv[3:]]  # argv: python -m tui ...
        start = time.perf_counter()
        result = subprocess.run(wrapped, capture_output=True, text=True, env=env, timeout=600)
        walls.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {result.stderr[-2000:]}")
        peaks.append(float(result.stderr.strip().splitlines()[-1].split()[-1]))
    return {"wall_s": round(statistics.median(walls), 2),
            "peak_rss_mb": round(statistics.median(peaks), 1)}


# Runs `python -m tui ARGS` in this process, then prints its own peak RSS on stderr.
RSS_WRAPPER = """
import resource, runpy, sys
sys.argv = ["tui", *sys.argv[1:]]
try:
    runpy.run_module("tui", run_name="__main__")
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)
sys.exit(code)
"""


def warm(home: Path, env: dict[str, str], questions: int) -> dict[str, float]:
    sys.path.insert(0, env.get("PYTHONPATH", "."))
    from commons.remote import RemoteApi
    from commons.storage.home import HomePaths

    node = subprocess.Popen([sys.executable, "-m", "tui", "--home", str(home), "serve",
                             "--listen", "127.0.0.1:0"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while (info := HomePaths(home).node_info()) is None or info.get("pid") != node.pid:
            if time.monotonic() > deadline or node.poll() is not None:
                raise SystemExit("the node did not start")
            time.sleep(0.2)
        api = RemoteApi.from_node_info(info)
        api.ask(question="warm up")
        latencies, first_times = [], []
        for i in range(questions):
            start = time.perf_counter()
            api.ask(question=QUESTIONS[i % len(QUESTIONS)])
            latencies.append(time.perf_counter() - start)
            if i < len(QUESTIONS):  # asked for the first time
                first_times.append(latencies[-1])
    finally:
        node.terminate()
        node.wait(timeout=60)
    latencies.sort()
    # The node remembers sentence vectors: a question asked again is quicker. The
    # first asking of each of the ten questions is reported apart.
    return {"p50_s": round(statistics.median(latencies), 3),
            "p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3),
            "questions": questions,
            "first_time_p50_s": round(statistics.median(first_times), 3),
            "first_time_max_s": round(max(first_times), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--embedder", default="minilm")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="commons-bench-cold-"))
    home = work / "home"
    env = {**os.environ, "COMMONS_EMBEDDER": args.embedder}
    base = [sys.executable, "-m", "tui", "--home", str(home)]
    # init, then one ask: the index is built (and the model exported, if needed) before timing.
    subprocess.run([*base, "init"], env=env, check=True, capture_output=True, timeout=1800)
    subprocess.run([*base, "ask", "warm up"], env=env, check=True, capture_output=True,
                   timeout=1800)
    small = work / "note.md"
    out: dict[str, Any] = {"embedder": args.embedder, "runs": args.runs,
                           "pythonpath": env.get("PYTHONPATH", "")}
    out["cold_ask"] = measure([*base, "ask", QUESTIONS[0]], env, args.runs)
    adds = []
    for i in range(args.runs):
        small.write_text(f"# Note {i}\n\nDry the maize for {i + 3} days before storing it.\n")
        adds.append(measure([*base, "add", str(small)], env, 1))
    out["cold_add"] = {k: round(statistics.median(a[k] for a in adds), 2) for k in adds[0]}
    if args.questions:
        out["warm_ask"] = warm(home, env, args.questions)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
