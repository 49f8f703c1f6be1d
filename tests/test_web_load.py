"""A class asks a real `commons mirror --web` at once: 50 clients for 20 seconds.

Every request gets an answer or a 503 with Retry-After, nothing else (no 500,
no reset connection, no timeout), and two other nodes whose only link is the
mirror keep syncing through it meanwhile. How fast they sync, loaded and idle,
is measured by bench/web.py (tests never assert on time).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sync_support import Peer, get_json, peers_in
from web_load import LoadReport, gossip_latency, load

CLIENTS = 50
SECONDS = 20.0

pytestmark = pytest.mark.slow


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[object]:
    yield from peers_in(tmp_path)


def test_fifty_clients_get_answers_or_503_and_gossip_goes_on(spawn) -> None:  # type: ignore[no-untyped-def]
    mirror: Peer = spawn("mirror").start(
        command="mirror", extra=("--web", "--web-answers", "2", "--web-queue", "8",
                                 "--web-rate", "1000000"))
    a: Peer = spawn("a").start(mirror)
    b: Peer = spawn("b").start(mirror)
    gossip_latency(a, b, "warm-up")  # both know the mirror; the path works

    result: list[LoadReport] = []
    runner = threading.Thread(target=lambda: result.append(
        asyncio.run(load(mirror.url, clients=CLIENTS, seconds=SECONDS))))
    runner.start()
    try:
        reached = [gossip_latency(a, b, f"under load {n}") for n in range(3)]
    finally:
        runner.join()
    report = result[0]
    summary = report.to_json()
    assert report.errors == {}, summary
    assert set(report.statuses) <= {200, 503}, summary
    assert report.statuses[200] > 0 and report.statuses[503] > 0, summary
    assert len(reached) == 3  # each note crossed a → mirror → b while the class asked
    assert get_json(mirror.url + "/status")["documents"] >= 12
