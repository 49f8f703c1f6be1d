"""Adversarial suite: hostile peer records against real node processes on loopback.

Findings F2 (eclipse by tarpit mirror records), F5 (a stranger's record naming
a proven peer's address) and F9 (Sybil peer records kept forever). Every loop
here is bounded in count and in time.
"""

from __future__ import annotations

import json
import selectors
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from signing import signed
from sync_support import Peer, add_file, now, peers_in, wait_for

from commons.model.identity import Identity
from commons.model.objects import PeerRecord, sign
from commons.storage.home import HomePaths
from sync.gossip.expiry import MAX_PEER_RECORDS
from sync.protocol.messages import MAX_PUSH_LINES

pytestmark = pytest.mark.slow


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[[str], Peer]]:
    yield from peers_in(tmp_path)


class Tarpits:
    """Loopback sockets that accept connections and never answer a byte."""

    def __init__(self, count: int) -> None:
        self.listeners = []
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen(16)
            sock.setblocking(False)
            self.listeners.append(sock)
        self.urls = [f"http://127.0.0.1:{s.getsockname()[1]}" for s in self.listeners]
        self.held: list[socket.socket] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        selector = selectors.DefaultSelector()
        for sock in self.listeners:
            selector.register(sock, selectors.EVENT_READ)
        while not self._done.is_set():
            for key, _ in selector.select(timeout=0.2):
                try:
                    conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                except OSError:
                    continue
                if len(self.held) < 2000:
                    self.held.append(conn)  # held open, never answered
                else:
                    conn.close()
        selector.close()

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)
        for sock in [*self.held, *self.listeners]:
            sock.close()


def record(who: Identity, url: str, *, at: int, mirror: bool = True) -> bytes:
    content = PeerRecord(author=who.public_key, created_at=at, addresses=(url,),
                         name="a mirror", mirror=mirror)
    return sign(content, who).to_bytes()


def push(peer: Peer, lines: list[bytes], sender: Identity) -> dict[str, Any]:
    """A signed push of `lines` to `peer`; waits out a 429 a bounded number of times."""
    body = b"".join(line + b"\n" for line in lines)
    receiver = bytes.fromhex(peer.status()["public_key"])
    for _ in range(30):
        headers = {"Content-Type": "application/x-ndjson",
                   **signed("/sync/push", body, receiver=receiver, at=now(), sender=sender)}
        request = urllib.request.Request(peer.url + "/sync/push", data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                result: dict[str, Any] = json.loads(response.read())
                return result
        except urllib.error.HTTPError as exc:
            if exc.code != 429:
                raise AssertionError(f"push answered {exc.code}: {exc.read()[:300]!r}") from exc
            time.sleep(min(2.0, float(exc.headers.get("Retry-After", "1"))))
    raise AssertionError("the push was rate limited 30 times in a row")


def peer_record_authors(peer: Peer) -> set[str]:
    """The authors of the peer records in `peer`'s store (read-only, beside the node)."""
    db = sqlite3.connect(f"file:{HomePaths(peer.home).db}?mode=ro", uri=True, timeout=30)
    try:
        rows = db.execute("SELECT author FROM objects WHERE kind = 'peer'").fetchall()
    finally:
        db.close()
    return {bytes(r[0]).hex() for r in rows}


def peer_rows(peer: Peer) -> dict[str, dict[str, Any]]:
    return {row["url"]: row for row in peer.api.peers()}


def test_tarpit_mirror_records_do_not_eclipse_the_bootstrap_peer(
    spawn: Callable[[str], Peer], tmp_path: Path
) -> None:
    """F2: after a restart among 250 tarpit mirrors, a new document still arrives."""
    pits = Tarpits(250)
    try:
        b = spawn("b").start()
        v = spawn("v").start(b)
        add_file(b, tmp_path, "Well water", "The well is clean again.")
        wait_for(lambda: "Well water" in v.titles(), "v synced with its bootstrap peer b")
        at = now() - 5
        lines = [record(Identity((5000 + i).to_bytes(32, "big")), url, at=at)
                 for i, url in enumerate(pits.urls)]
        reply = push(v, lines, Identity(bytes([77]) * 32))
        assert reply["accepted"] == 250
        v.stop()
        v.start(b)
        add_file(b, tmp_path, "Market day", "The market moves to Thursday.")
        # Rounds run every 0.3 s: a tarpit holding a gossip slot for its timeouts
        # would keep the document away for a minute or more.
        wait_for(lambda: "Market day" in v.titles(), "v got the new document from b",
                 deadline=30)
        rows = peer_rows(v)
        assert rows[b.url]["trusted"] and rows[b.url]["proven_at"] > 0
        tarpit_rows = [rows[u] for u in pits.urls if u in rows]
        assert tarpit_rows, "the records were learnt"
        assert not any(row["trusted"] or row["proven_at"] for row in tarpit_rows)
        counts = v.status()["peers"]
        assert counts["trusted"] == 1 and counts["candidates"] == len(tarpit_rows)
    finally:
        pits.close()


def test_sybil_peer_records_expire_and_do_not_rebind_a_proven_peer(
    spawn: Callable[[str], Peer], tmp_path: Path
) -> None:
    """F9 and F5: records from fresh keys, four times the cap; a record by M naming B's URL."""
    b = spawn("b").start()
    v = spawn("v").start(b)
    add_file(b, tmp_path, "Well water", "The well is clean again.")
    wait_for(lambda: "Well water" in v.titles(), "v synced with b")
    b_key = b.status()["public_key"]
    wait_for(lambda: peer_rows(v)[b.url]["key"] == b_key, "v proved b's key")
    mallory = Identity(bytes([66]) * 32)
    sybils = 4 * MAX_PEER_RECORDS  # the finding had 10,000; four times the cap shows it
    at = now() - 20_000  # the records below are a second apart, none in the future
    push(v, [record(mallory, b.url, at=at)], mallory)
    push(v, [record(mallory, "http://127.0.0.1:9", at=at + 1)], mallory)  # "forget b"
    row = peer_rows(v)[b.url]
    assert row["key"] == b_key and row["trusted"] and row["state"] == "active"

    first_batch: list[bytes] = []
    for start in range(0, sybils, MAX_PUSH_LINES):
        lines = [record(Identity((100_000 + i).to_bytes(32, "big")),
                        f"http://127.0.0.1:{1024 + i}", at=at + i)
                 for i in range(start, min(sybils, start + MAX_PUSH_LINES))]
        first_batch = first_batch or lines
        push(v, lines, Identity((200_000 + start).to_bytes(32, "big")))  # keys are free
    cap = MAX_PEER_RECORDS
    wait_for(lambda: v.status()["objects"].get("peer", 0) <= cap,
             f"v keeps at most {cap} peer records")
    # The proven bootstrap peer's record and v's own are kept; nothing else is touched.
    authors = peer_record_authors(v)
    assert {b_key, v.status()["public_key"]} <= authors
    assert "Well water" in v.titles() and v.status()["objects"].get("profile", 0) >= 2
    assert peer_rows(v)[b.url]["key"] == b_key
    # What expired does not come back by gossip.
    again = push(v, first_batch, Identity(bytes([78]) * 32))
    assert again["accepted"] == 0
    add_file(b, tmp_path, "Clinic hours", "The clinic opens at eight.")
    wait_for(lambda: "Clinic hours" in v.titles(), "v still syncs with b")
    assert v.status()["objects"].get("peer", 0) <= cap
