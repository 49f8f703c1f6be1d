"""F7 (floods) between real `commons serve` processes on loopback.

One key pushes valid documents to a node as fast as it can while an honest
node's new document still arrives there, and what the flooding key brings in
stays within the node's ingress budget. Every loop is bounded in count and in
time; nothing asserts on time.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sync_support import Peer, add_file, cli, now, peers_in, wait_for

from commons.model.identity import Identity
from commons.model.objects import Document, sign
from sync.protocol.auth import sign_request

pytestmark = pytest.mark.slow

FLOODER = Identity(bytes(range(7, 39)))
PER_PEER = 100  # objects per minute that one key may bring in (the mirror's flag)
PUSH = 50  # documents in each of the flood's pushes
MAX_PUSHES = 80
FLOOD_SECONDS = 15.0


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[[str], Peer]]:
    yield from peers_in(tmp_path)


class Flood:
    """Signed pushes of fresh valid documents by one key, until stopped or out of count."""

    def __init__(self, target: Peer) -> None:
        self.target = target
        self.receiver = bytes.fromhex(target.status()["public_key"])
        self.statuses: list[int] = []
        self.stop = threading.Event()
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        at = now() - 60
        for n in range(MAX_PUSHES):
            if self.stop.is_set() or time.monotonic() - self.started > FLOOD_SECONDS:
                return
            body = b"".join(
                sign(Document(author=FLOODER.public_key, created_at=at, title=f"Offer {n}.{i}",
                              body=f"Buy now, offer {n}.{i}."), FLOODER).to_bytes() + b"\n"
                for i in range(PUSH))
            headers = sign_request(FLOODER, "POST", "/sync/push", body, at=now(),
                                   receiver=self.receiver)
            request = urllib.request.Request(self.target.url + "/sync/push", data=body,
                                             headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=60) as resp:
                    self.statuses.append(resp.status)
            except urllib.error.HTTPError as exc:
                self.statuses.append(exc.code)
            except OSError:
                self.statuses.append(0)


def test_one_key_floods_a_node_and_an_honest_document_still_arrives(
    spawn: Callable[[str], Peer], tmp_path: Path,
) -> None:
    mirror = spawn("mirror").start(extra=("--ingress-per-peer", f"{PER_PEER}/minute"))
    honest = spawn("honest").start(mirror)
    flood = Flood(mirror)
    flood.thread.start()
    try:
        wait_for(lambda: len(flood.statuses) >= 3, "the flood has begun", deadline=30)
        add_file(honest, tmp_path, "Well water", "Boil well water for one minute.")
        wait_for(lambda: "Well water" in mirror.titles(), "the honest document reached the mirror")
        # A local add on the flooded node goes through at once, whatever waits behind.
        add_file(mirror, tmp_path, "Mirror notes", "Opening hours: nine to five.")
        assert "Mirror notes" in mirror.titles()
    finally:
        flood.stop.set()
        flood.thread.join(timeout=90)
    elapsed = time.monotonic() - flood.started
    documents = json.loads(cli(mirror.home, "ls", "--json"))
    flooded = sum(1 for d in documents if d["title"].startswith("Offer "))
    # The budget's whole bucket, what refilled while the flood ran, and one push that
    # may overdraw a full bucket: never the thousands the flood sent.
    ceiling = PER_PEER + PER_PEER * elapsed / 60 + PUSH
    assert 0 < flooded <= ceiling, (flooded, ceiling, flood.statuses)
    assert 429 in flood.statuses
    sent = sum(PUSH for s in flood.statuses if s)
    assert flooded < sent
    ingress = mirror.status()["ingress"]
    assert ingress["throttled"] >= flood.statuses.count(429)
    assert ingress["objects_per_peer"] == f"{PER_PEER}/minute"
