"""Benchmark: a fresh peer joins a node that holds N documents.

Node A holds the first N SciFact documents (stored directly, then served by
`commons serve` with the fake embedder, so that A's own indexing does not
compete for the CPU). Peer B, fresh, with the real embedder, joins A. Reported,
in seconds from B's start: until B holds them all, until B's first cited answer
from them (asked through B's local API, as `commons ask` does), and until B's
dense index is complete.

    PYTHONPATH=. python bench/join.py --corpus ../shared/eval/scifact/corpus.jsonl [--docs 1000]
        [--source /tmp/join-source-1000]

`--source DIR` keeps A's home in DIR: built on the first run, reused by the next
ones (A's documents and ids are then the same from run to run). Each `ask` made
while waiting is listed (when, how long it took, whether it cited A's documents),
and B's log is kept in the work directory (`b.log`).

Run it with PYTHONPATH pointing at another checkout to measure that code.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, os.environ.get("PYTHONPATH") or str(Path(__file__).resolve().parent.parent))

from commons.remote import RemoteApi  # noqa: E402
from commons.service import Commons  # noqa: E402
from commons.storage.home import HomePaths  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/status", timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def serve(home: Path, port: int, env: dict[str, str], *peers: str,
          log: Path | None = None) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "tui", "--home", str(home), "serve",
            "--listen", f"127.0.0.1:{port}", "--interval", "0.5"]
    for peer in peers:
        argv += ["--peer", peer]
    if log is None:
        return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    with open(log, "wb") as f:
        return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=f)


def load(corpus: Path, limit: int) -> list[tuple[str, str]]:
    docs = []
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            if len(docs) >= limit:
                break
            item = json.loads(line)
            title = " ".join(item["title"].split())[:300]
            body = " ".join(s.strip() for s in item["sentences"])
            if title and body:
                docs.append((title, body))
    return docs


def source_home(home: Path, docs: list[tuple[str, str]]) -> int:
    """A's home with the documents (built once when `home` is kept); how many it holds."""
    if not HomePaths(home).exists():
        with Commons.init(HomePaths(home), clock=lambda: int(time.time()), name="a") as a:
            for title, body in docs:
                a.add_document(title=title, body=body, tags=["scifact"])
    with Commons(HomePaths(home), clock=lambda: int(time.time())) as a:
        held = a.store.count("document")
    if held < len(docs):
        raise SystemExit(f"{home} holds {held} documents, fewer than --docs; remove it")
    return held


def run(corpus: Path, limit: int, embedder: str, deadline: float,
        source: Path | None = None, stop_at_answer: bool = False) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="commons-bench-join-"))
    docs = load(corpus, limit)
    a_home, b_home = source or work / "a", work / "b"
    held = source_home(a_home, docs)
    Commons.init(HomePaths(b_home), clock=lambda: int(time.time()), name="b").close()
    a_port, b_port = free_port(), free_port()
    a_url, b_url = f"http://127.0.0.1:{a_port}", f"http://127.0.0.1:{b_port}"
    a_node = serve(a_home, a_port, {**os.environ, "COMMONS_EMBEDDER": "fake"})
    b_node = None
    out: dict[str, Any] = {"documents": len(docs), "embedder": embedder, "asks": [],
                           "b_log": str(work / "b.log")}
    try:
        while True:
            try:
                status(a_url)
                break
            except OSError:
                time.sleep(0.2)
        start = time.perf_counter()
        b_node = serve(b_home, b_port, {**os.environ, "COMMONS_EMBEDDER": embedder}, a_url,
                       log=work / "b.log")
        question = docs[len(docs) // 2][0]  # a title, as a question
        while time.perf_counter() - start < deadline:
            try:
                s = status(b_url)
            except OSError:
                time.sleep(0.2)
                continue
            elapsed = round(time.perf_counter() - start, 2)
            if "hold_all_s" not in out and s["documents"] >= held:
                out["hold_all_s"] = elapsed
            dense = s.get("dense_index")
            complete = dense["complete"] if dense else s.get("index") == "ready"
            if "hold_all_s" in out and complete and "dense_complete_s" not in out:
                out["dense_complete_s"] = elapsed
            if "hold_all_s" in out and "first_answer_s" not in out:
                info = HomePaths(b_home).node_info()
                if info is not None:
                    api = RemoteApi(info["api_url"], info["token"], timeout=deadline)
                    asked = time.perf_counter()
                    answer = api.ask(question=question)
                    cited = any(c["origin"] == a_url for c in answer["citations"])
                    out["asks"].append({"at_s": round(asked - start, 2),
                                        "took_s": round(time.perf_counter() - asked, 2),
                                        "cited": cited})
                    if cited:
                        out["first_answer_s"] = round(time.perf_counter() - start, 2)
                        out["first_answer_index"] = answer.get("index")
            if {"hold_all_s", "first_answer_s", "dense_complete_s"} <= set(out):
                break
            if stop_at_answer and "first_answer_s" in out:
                break
            time.sleep(0.5)
    finally:
        for node in (b_node, a_node):
            if node is not None:
                node.terminate()
                try:
                    node.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    out.setdefault("not_stopped_in_60s", []).append(node.pid)
                    node.kill()
                    node.wait(timeout=60)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="BEIR-style corpus.jsonl")
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--embedder", default="minilm")
    parser.add_argument("--deadline", type=float, default=1800.0, help="give up after (s)")
    parser.add_argument("--source", type=Path,
                        help="keep A's home here: built once, reused by later runs")
    parser.add_argument("--stop-at-answer", action="store_true",
                        help="stop after the first cited answer (skip the dense index)")
    args = parser.parse_args()
    print(json.dumps(run(args.corpus, args.docs, args.embedder, args.deadline, args.source,
                         args.stop_at_answer), indent=2))


if __name__ == "__main__":
    main()
