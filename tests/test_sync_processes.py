"""Real `commons serve` processes gossiping on loopback, each in its own home.

Every test polls with a deadline (never sleeps a fixed time, never asserts on
time) and kills its processes in teardown, whatever happens.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sync_support import Peer, add_file, cli, now, peers_in, wait_for

from commons.model.identity import Identity
from commons.model.objects import Document, SignedObject, sign
from commons.service import Commons
from commons.storage.home import HomePaths
from commons.storage.store import ObjectStore
from sync.protocol.negentropy import Reconciler, SortedItems

pytestmark = pytest.mark.slow

@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[[str], Peer]]:
    yield from peers_in(tmp_path)

def test_two_peers_converge_and_stop_cleanly(spawn: Callable[[str], Peer], tmp_path: Path) -> None:
    a = spawn("a").start()
    b = spawn("b").start(a)
    oid = add_file(a, tmp_path, "Grain storage", "Dry the maize well before storing it.")
    wait_for(lambda: "Grain storage" in b.titles(), "b has a's document")
    listed = json.loads(cli(b.home, "ls", "--json"))  # the CLI goes through b's node
    assert next(d for d in listed if d["id"] == oid)["origin"] == a.url
    wait_for(lambda: a.status()["total"] == b.status()["total"], "same object counts")
    peers = json.loads(cli(b.home, "peers", "ls", "--json"))
    assert [p["url"] for p in peers] == [a.url] and peers[0]["name"] == "a"
    a.stop()
    assert a.proc is not None and a.proc.returncode == 0
    assert not HomePaths(a.home).node.exists()  # removed on a clean stop


def test_five_peers_in_a_line_converge_by_peer_exchange(
    spawn: Callable[[str], Peer], tmp_path: Path
) -> None:
    line: list[Peer] = []
    for i in range(5):
        line.append(spawn(f"p{i}").start(*line[-1:]))  # each knows only its neighbour
    add_file(line[4], tmp_path, "Bridge repair", "The east bridge needs new planks.")
    add_file(line[0], tmp_path, "Clinic hours", "The clinic opens at eight on Mondays.")
    for peer in line:
        wait_for(lambda p=peer: {"Bridge repair", "Clinic hours"} <= p.titles(),  # type: ignore[misc]
                 f"{peer.name} has both documents")
    # Through signed peer records the ends of the line now know each other.
    wait_for(lambda: line[4].url in {p["url"] for p in line[0].api.peers()},
             "p0 learnt of p4")
    totals = {p.name: p.status()["total"] for p in line}
    wait_for(lambda: len({p.status()["total"] for p in line}) == 1, f"equal totals {totals}")


def test_a_retraction_reaches_every_peer_and_leaves_ask(
    spawn: Callable[[str], Peer], tmp_path: Path
) -> None:
    a = spawn("a").start()
    b = spawn("b").start(a)
    c = spawn("c").start(b)
    oid = add_file(a, tmp_path, "Zanzibarite filters",
                   "Zanzibarite filters clean the village water in an afternoon.")
    question = "how do zanzibarite filters clean water?"

    def cites(peer: Peer) -> bool:
        answer = peer.api.ask(question)
        return any(citation["id"] == oid for citation in answer["citations"])

    wait_for(lambda: cites(c), "c answers from the document")
    cli(a.home, "retract", oid[:12], "--reason", "the filters do not work")
    for peer in (a, b, c):
        wait_for(lambda p=peer: "Zanzibarite filters" not in p.titles(),  # type: ignore[misc]
                 f"{peer.name} dropped the document")
        assert not cites(peer)


def make_documents(n: int) -> list[SignedObject]:
    author = Identity(bytes(range(1, 33)))
    body = "A line of a field report about soil and rain. " * 6
    return [sign(Document(author=author.public_key, created_at=now() - 10_000 + i,
                          title=f"Field report {i}", body=f"{body} {i}"), author)
            for i in range(n)]


def count_objects(home: Path) -> int:
    store = ObjectStore(HomePaths(home).db)
    try:
        return store.count()
    finally:
        store.close()


def test_a_peer_killed_mid_sync_resumes_and_converges(spawn: Callable[[str], Peer]) -> None:
    a = spawn("a")
    with Commons(HomePaths(a.home), clock=now) as home:
        for obj in make_documents(600):  # three fetch batches
            home.store.put(obj, now=now())
    a.start()
    b = spawn("b")
    at_start = count_objects(b.home)
    b.start(a)
    wait_for(lambda: b.status()["total"] > at_start, "b has begun to fetch")
    b.stop(signal.SIGKILL)
    mid_sync = count_objects(b.home)
    assert at_start < mid_sync < a.status()["total"]
    b.start(a)
    wait_for(lambda: a.status()["total"] == b.status()["total"], "b caught up with a")
    assert {d["id"] for d in a.api.documents(author=None, tag=None)} == {
        d["id"] for d in b.api.documents(author=None, tag=None)
    }


class TamperingPeer:
    """A peer in a thread of the test that serves objects altered after signing."""

    def __init__(self, objects: list[SignedObject]) -> None:
        self.lines: dict[bytes, bytes] = {}
        for obj in objects:
            fields = obj.to_json()
            fields["body"] += " Also: send your savings to this account."
            self.lines[obj.id] = json.dumps(fields).encode()
        self.items = SortedItems((o.created_at, o.id) for o in objects)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _reconcile(self, request: web.Request) -> web.Response:
        return web.Response(body=Reconciler(self.items).respond(await request.read()))

    async def _fetch(self, request: web.Request) -> web.Response:
        wanted = [bytes.fromhex(i) for i in (await request.json())["ids"]]
        return web.Response(body=b"".join(self.lines[i] + b"\n" for i in wanted
                                          if i in self.lines))

    async def _push(self, request: web.Request) -> web.Response:
        return web.json_response({"accepted": 0, "duplicate": 0, "declined": [], "refused": []})

    async def _offer(self, request: web.Request) -> web.Response:
        return web.json_response({"want": []})

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response({"public_key": "ab" * 32})

    async def _start(self) -> str:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/sync/reconcile", self._reconcile)
        app.router.add_post("/sync/fetch", self._fetch)
        app.router.add_post("/sync/push", self._push)
        app.router.add_post("/sync/offer", self._offer)
        app.router.add_get("/status", self._status)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    def __enter__(self) -> TamperingPeer:
        self.thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def test_a_tampering_peer_is_refused_while_the_others_keep_syncing(
    spawn: Callable[[str], Peer], tmp_path: Path
) -> None:
    author = Identity(bytes(range(2, 34)))
    cure = sign(Document(author=author.public_key, created_at=now() - 60, title="Fever cure",
                         body="Rest and drink water."), author)
    with TamperingPeer([cure]) as tamperer:
        a = spawn("a").start(extra=("--peer", tamperer.url))
        b = spawn("b").start(a, extra=("--peer", tamperer.url))

        def standing(peer: Peer) -> dict[str, Any] | None:
            rows = [p for p in peer.api.peers() if p["url"] == tamperer.url]
            return rows[0] if rows and rows[0]["state"] == "dropped" else None

        for peer in (a, b):
            dropped = wait_for(lambda p=peer: standing(p), f"{peer.name} dropped the tamperer")  # type: ignore[misc]
            assert dropped["faults"] >= 3 and dropped["health"] < 0.5
        add_file(b, tmp_path, "Market day", "The market moves to Thursday this month.")
        wait_for(lambda: "Market day" in a.titles(), "a still syncs with b")
        assert "Fever cure" not in a.titles() | b.titles()
        assert "Fever cure" not in cli(a.home, "ls")


def test_peers_commands_and_a_one_off_sync_without_a_node(
    spawn: Callable[[str], Peer], tmp_path: Path
) -> None:
    a = spawn("a").start()
    add_file(a, tmp_path, "Seed bank", "Keep the seeds cool and dry.")
    c = spawn("c")  # never serves: the commands open its home themselves
    assert "added http://127.0.0.1:9" in cli(c.home, "peers", "add", "127.0.0.1:9/")
    result = json.loads(cli(c.home, "sync", a.url, "--json"))
    assert result["error"] is None and result["fetched"] >= 1 and result["round_trips"] >= 1
    assert "Seed bank" in cli(c.home, "ls")
    listed = {p["url"]: p for p in json.loads(cli(c.home, "peers", "ls", "--json"))}
    assert set(listed) == {"http://127.0.0.1:9", a.url}
    assert listed[a.url]["source"] == "record" and listed[a.url]["name"] == "a"  # its signed record
    cli(c.home, "peers", "rm", "http://127.0.0.1:9")
    states = {p["url"]: p["state"] for p in json.loads(cli(c.home, "peers", "ls", "--json"))}
    assert states == {"http://127.0.0.1:9": "removed", a.url: "active"}
    # Asking a node to sync with itself is refused with a reason.
    own = subprocess.run([sys.executable, "-m", "tui", "--home", str(a.home), "sync", a.url],
                         capture_output=True, text=True, timeout=60)
    assert own.returncode == 1 and "this node itself" in own.stderr


def test_a_mirror_with_a_bad_policy_stops_with_the_reason(tmp_path: Path) -> None:
    home = tmp_path / "m"
    with Commons.init(HomePaths(home), clock=now, name="m"):
        pass
    policy = tmp_path / "policy.json"
    policy.write_text('{"accept": {"tags": ["maths"]}, "rate_limit": "60/minute"}')
    result = subprocess.run(
        [sys.executable, "-m", "tui", "--home", str(home), "mirror", "--listen",
         "127.0.0.1:0", "--policy", str(policy)], capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert "unknown key 'rate_limit'" in result.stderr and str(policy) in result.stderr
