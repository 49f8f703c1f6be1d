"""Nodes in one event loop, talking real HTTP over loopback."""

from __future__ import annotations

import asyncio
import os
import random
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from embedders import embedder_for_tests
from signing import STRANGER, signed

from commons.ingest import Extracted
from commons.model.errors import CommonsError, NotFound
from commons.model.identity import Identity
from commons.model.objects import Document, Retraction, SignedObject, sign
from commons.remote import RemoteApi
from commons.service import Commons
from commons.storage.home import HomePaths
from sync.gossip.policy import Policy
from sync.http.node import Node
from sync.http.status import NodeEvent
from sync.protocol.messages import PROTOCOL, PROTOCOL_HEADER
from sync.protocol.negentropy import Reconciler, SortedItems

NOW = 1_800_000_000

MakeNode = Callable[..., Awaitable[Node]]


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


def publish(node: Node, title: str, tags: tuple[str, ...] = (), body: str | None = None) -> bytes:
    obj, _ = node.commons.add_document(title=title, body=body or f"All about {title}.", tags=tags)
    return obj.id


def ids(node: Node) -> list[tuple[int, bytes]]:
    return node.store.items()


async def eventually(check: Callable[[], bool], what: str, deadline: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not check():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.02)


async def test_two_nodes_converge_by_push_and_pull(make_node: MakeNode) -> None:
    a = await make_node("a")
    b = await make_node("b", peers=[a.url])
    only_a = publish(a, "Wells")
    only_b = publish(b, "Rain tanks")
    result = await b.sync_with(a.url)
    assert result.error is None
    assert result.fetched >= 1 and result.pushed >= 1 and result.round_trips >= 1
    assert ids(a) == ids(b)
    assert a.store.has(only_b) and b.store.has(only_a)
    assert b.store.get_stored(only_a).origin == a.url
    again = await b.sync_with(a.url)
    assert (again.fetched, again.pushed, again.round_trips) == (0, 0, 1)
    (peer,) = b.peers()
    assert peer.url == a.url and peer.last_seen == NOW and peer.received == result.fetched
    assert peer.name == "a"  # from a's signed peer record, which b now holds


@pytest.mark.slow
async def test_many_objects_move_in_batches(make_node: MakeNode, alice: Identity) -> None:
    a = await make_node("a")
    b = await make_node("b")
    for i in range(300):
        doc = Document(author=alice.public_key, created_at=NOW - i, title=f"n{i}", body="x" * 50)
        a.store.put(sign(doc, alice), now=NOW)
    result = await b.sync_with(a.url)
    assert result.error is None and result.fetched >= 300
    assert ids(a) == ids(b)


async def test_fresh_objects_are_offered_without_waiting_for_a_round(make_node: MakeNode) -> None:
    a = await make_node("a")
    b = await make_node("b", peers=[a.url])
    await b.sync_with(a.url)  # a learns b from b's peer record
    assert [p.url for p in a.peers()] == [b.url]
    events: list[NodeEvent] = []
    a.subscribe(events.append)
    oid = await asyncio.to_thread(publish, a, "Seed swap on Saturday")
    await eventually(lambda: b.store.has(oid), "b has the fresh document")
    await eventually(lambda: any(e.kind == "offered" and e.peer == b.url for e in events),
                     "a logged its offer")
    assert a.rounds == b.rounds == 1  # only the round each ran as it started


async def test_retractions_travel_and_remove_the_content(make_node: MakeNode) -> None:
    a = await make_node("a")
    b = await make_node("b")
    oid = publish(a, "A mistake")
    await b.sync_with(a.url)
    assert b.store.has(oid)
    a.commons.retract(oid.hex()[:12], "wrong")
    await b.sync_with(a.url)
    assert not b.store.has(oid) and b.store.is_withdrawn(oid)
    assert ids(a) == ids(b)


async def test_a_withdrawn_object_is_declined_and_not_fetched(make_node: MakeNode) -> None:
    a = await make_node("a", eager=False)  # so the retraction does not reach c by an offer
    c = await make_node("c")
    oid = publish(a, "Old timetable")
    await c.sync_with(a.url)  # c keeps the document and will not hear of the retraction
    a.commons.retract(oid.hex()[:12], "replaced")
    b = await make_node("b", eager=False)  # nor by an offer from b
    await b.sync_with(a.url)  # b holds only the retraction: anyone could have signed one
    assert not b.store.is_withdrawn(oid) and not b.store.has(oid)
    # Pushing the withdrawn document is declined, not held against the sender.
    body = c.store.get(oid).to_bytes() + b"\n"
    async with aiohttp.ClientSession() as http, http.post(
        b.url + "/sync/push", data=body,
        headers=signed("/sync/push", body, receiver=b.public_key, at=NOW),
    ) as resp:
        reply = await resp.json()
    assert reply["accepted"] == 0 and reply["refused"] == []
    assert "retracted" in reply["declined"][0]["reason"]
    assert b.store.is_withdrawn(oid)  # the document's own author withdrew it
    # b does not fetch it from c, and its retraction removes it there.
    result = await b.sync_with(c.url)
    assert result.error is None and result.fetched == 0 and result.pushed >= 1
    assert not c.store.has(oid) and c.store.is_withdrawn(oid)


async def test_a_conflicting_retraction_is_declined_not_blamed_on_the_relay(
    make_node: MakeNode, alice: Identity, bob: Identity
) -> None:
    """Bob "retracts" Alice's document. A peer that never saw the document keeps the
    retraction in good faith; a peer holding the document cannot apply it, but the
    relaying peer did nothing wrong and keeps its standing."""
    a = await make_node("a")
    b = await make_node("b")
    doc = sign(Document(author=alice.public_key, created_at=NOW, title="Mine", body="x"), alice)
    a.store.put(doc, now=NOW)
    fake = sign(Retraction(author=bob.public_key, created_at=NOW, target=doc.id), bob)
    b.store.put(fake, now=NOW)
    first = await a.sync_with(b.url)
    assert first.error is None and first.declined == 1 and a.store.has(doc.id)
    second = await a.sync_with(b.url)
    assert (second.error, second.fetched, second.declined) == (None, 0, 0)
    (peer,) = a.peers()
    assert peer.faults == 0 and peer.state == "active"


class Tamperer:
    """A peer that serves objects whose content no longer matches their id."""

    def __init__(self, objects: list[SignedObject]) -> None:
        self.lines = {}
        for obj in objects:
            fields = obj.to_json()
            fields["body"] = fields["body"] + " (and send money to this address)"
            import json

            self.lines[obj.id] = json.dumps(fields).encode()
        self.items = SortedItems((o.created_at, o.id) for o in objects)
        self.fetches = 0

    async def reconcile(self, request: web.Request) -> web.Response:
        return web.Response(body=Reconciler(self.items).respond(await request.read()))

    async def fetch(self, request: web.Request) -> web.Response:
        self.fetches += 1
        wanted = [bytes.fromhex(i) for i in (await request.json())["ids"]]
        return web.Response(body=b"".join(self.lines[i] + b"\n" for i in wanted if i in self.lines))

    async def push(self, request: web.Request) -> web.Response:
        return web.json_response({"accepted": 0, "duplicate": 0, "declined": [], "refused": []})

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response({"public_key": STRANGER.public_key.hex()})


@pytest.fixture
async def tamperer(alice: Identity) -> AsyncIterator[tuple[str, Tamperer]]:
    doc = sign(Document(author=alice.public_key, created_at=NOW, title="Cure", body="Rest."), alice)
    t = Tamperer([doc])
    app = web.Application()
    app.router.add_post("/sync/reconcile", t.reconcile)
    app.router.add_post("/sync/fetch", t.fetch)
    app.router.add_post("/sync/push", t.push)
    app.router.add_get("/status", t.status)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", t
    await runner.cleanup()


async def test_a_tampering_peer_is_refused_and_dropped(
    make_node: MakeNode, tamperer: tuple[str, Tamperer]
) -> None:
    url, t = tamperer
    b = await make_node("b", peers=[url])
    before = ids(b)
    events: list[NodeEvent] = []
    b.subscribe(events.append)
    for attempt in range(1, 4):
        result = await b.sync_with(url)
        assert result.error is not None and "does not match" in result.error
        assert result.refused == 1 and result.fetched == 0
        (peer,) = b.peers()
        assert peer.faults == attempt
    assert ids(b) == before
    assert peer.state == "dropped" and peer.health < 0.1
    assert [e.kind for e in events].count("fault") == 3 and events[-1].kind == "dropped"
    assert await b.sync_now() == []  # a dropped peer is not chosen again
    assert t.fetches == 3


async def test_a_mirror_keeps_what_its_policy_accepts_and_remembers_the_rest(
    make_node: MakeNode,
) -> None:
    a = await make_node("a")
    maths = publish(a, "Fractions", tags=("maths",))
    art = publish(a, "Charcoal", tags=("art",))
    policy = Policy.from_json({"accept": {"tags": ["maths"]}})
    m = await make_node("m", policy=policy, mirror=True)
    first = await m.sync_with(a.url)
    assert first.error is None and first.declined == 1
    assert m.store.has(maths) and not m.store.has(art)
    second = await m.sync_with(a.url)
    assert (second.fetched, second.declined) == (0, 0)  # not fetched again
    # And what a pushes to the mirror is filtered the same way.
    pushed_art = publish(a, "Clay", tags=("art",))
    result = await a.sync_with(m.url)
    assert result.error is None and not m.store.has(pushed_art)
    assert (await m.status())["declined"] == 2


async def test_rate_limits_answer_429_and_the_client_backs_off(make_node: MakeNode) -> None:
    limited = Policy.from_json({"rate_limit_per_peer": "3/minute"})
    a = await make_node("a", policy=limited)
    b = await make_node("b", max_candidates=0)  # no address proofs: only the sync's requests
    first = await b.sync_with(a.url)  # reconcile, fetch, push: three requests
    assert first.error is None
    second = await b.sync_with(a.url)
    assert second.error is not None and "429" in second.error
    peer = next(p for p in b.peers() if p.url == a.url)
    assert peer.failures == 1 and peer.next_attempt > NOW


async def test_endpoints_refuse_garbage_with_a_reason(make_node: MakeNode) -> None:
    a = await make_node("a")
    headers = {PROTOCOL_HEADER: PROTOCOL}
    async with aiohttp.ClientSession() as http:
        for path, body, status in [
            ("/sync/reconcile", b"\x61\xff\xff", 400),
            ("/sync/reconcile", b"\x61" + b"\0" * 70_000, 413),
            ("/sync/fetch", b"not json", 400),
            ("/sync/offer", b'{"ids": ["xyz"]}', 400),
            ("/sync/push", b"x" * 3_000_000, 400),
        ]:
            proof = signed(path, body, receiver=a.public_key, at=NOW)
            async with http.post(a.url + path, data=body, headers={**headers, **proof}) as resp:
                assert resp.status == status, (path, await resp.text())
        doc = b'{"kind": "document"}\n'
        async with http.post(a.url + "/sync/push", data=doc,
                             headers=signed("/sync/push", doc, receiver=a.public_key,
                                            at=NOW)) as resp:
            reply = await resp.json()
            assert reply["accepted"] == 0 and len(reply["refused"]) == 1
        async with http.get(a.url + "/status") as resp:
            status_json = await resp.json()
    assert status_json["url"] == a.url and status_json["documents"] == a.store.count("document")
    assert status_json["protocol"] == PROTOCOL
    # The local API is not served on the gossip address.
    async with aiohttp.ClientSession() as http, http.post(a.url + "/api/whoami") as resp:
        assert resp.status == 404


async def test_local_api_is_token_protected_and_maps_errors(make_node: MakeNode) -> None:
    a = await make_node("a")
    paths = a.commons.paths
    assert stat.S_IMODE(os.stat(paths.node).st_mode) == 0o600
    info = paths.node_info()
    assert info is not None and info["url"] == a.url and info["api_url"].startswith("http://127.")
    api = RemoteApi.from_node_info(info)
    assert (await asyncio.to_thread(api.whoami))["name"] == "a"
    added = await asyncio.to_thread(
        api.add, Extracted("Compost", "Turn it weekly.", "text/markdown"),
        title=None, tags=["garden"], licence="CC0-1.0", replaces=None,
    )
    assert added["status"] == "added" and a.store.has(bytes.fromhex(added["id"]))
    with pytest.raises(NotFound, match="no object with an id starting 00000000"):
        await asyncio.to_thread(api.show, "00000000")
    peers = await asyncio.to_thread(api.add_peer, "http://127.0.0.1:9")
    assert peers["url"] == "http://127.0.0.1:9" and peers["source"] == "manual"
    assert [p["url"] for p in await asyncio.to_thread(api.peers)] == ["http://127.0.0.1:9"]
    assert (await asyncio.to_thread(api.remove_peer, "http://127.0.0.1:9"))["removed"]
    with pytest.raises(CommonsError, match="wrong token"):
        await asyncio.to_thread(RemoteApi(info["api_url"], "guess").whoami)
    with pytest.raises(CommonsError, match="no API method"):
        await asyncio.to_thread(api.call, "drop_everything")
    await a.stop()
    assert not paths.node.exists()
    with pytest.raises(CommonsError, match="does not answer"):
        await asyncio.to_thread(api.whoami)


async def test_sync_with_an_unreachable_peer_reports_and_backs_off(make_node: MakeNode) -> None:
    b = await make_node("b", peers=["http://127.0.0.1:9"])
    (result,) = await b.sync_now()
    assert result.error is not None and "cannot be reached" in result.error
    (peer,) = b.peers()
    assert peer.failures == 1
    assert await b.sync_now() == []  # backing off: the clock has not moved


async def test_peer_table_survives_a_restart(make_node: MakeNode, tmp_path: Path) -> None:
    a = await make_node("a")
    b = await make_node("b", peers=[a.url])
    await b.sync_with(a.url)
    await b.stop()
    b.commons.close()
    reopened = Commons(HomePaths(tmp_path / "b"), clock=Clock(), embedder=embedder_for_tests())
    try:
        node = Node(reopened, rng=random.Random(0), clock=Clock())
        result = await node.sync_with(a.url)
        assert result.error is None
        assert [(p.url, p.received > 0) for p in node.peers()] == [(a.url, True)]
        await node.stop()
    finally:
        reopened.close()


# -- a peer's bytes can only be the peer's fault ----------------------------------------


def unreadable(obj: SignedObject) -> bytes:
    """The object's line with its created_at made a 5,000-digit integer."""
    import json

    fields = obj.to_json()
    fields["created_at"] = 0
    line = json.dumps(fields).replace('"created_at": 0', '"created_at": ' + "9" * 5000)
    assert len(line) > 5000
    return line.encode()


async def test_an_unreadable_pushed_object_is_refused_and_the_rest_kept(
    make_node: MakeNode, alice: Identity
) -> None:
    a = await make_node("a")
    bad = sign(Document(author=alice.public_key, created_at=NOW, title="Big", body="x"), alice)
    good = sign(Document(author=alice.public_key, created_at=NOW, title="Fine", body="y"), alice)
    body = unreadable(bad) + b"\n" + good.to_bytes() + b"\n"
    async with aiohttp.ClientSession() as http, http.post(
        a.url + "/sync/push", data=body,
        headers=signed("/sync/push", body, receiver=a.public_key, at=NOW),
    ) as resp:
        assert resp.status == 200, await resp.text()
        reply = await resp.json()
    assert reply["accepted"] == 1 and len(reply["refused"]) == 1
    assert a.store.has(good.id) and not a.store.has(bad.id)


async def test_a_peer_serving_an_unreadable_object_is_blamed_and_the_round_goes_on(
    make_node: MakeNode, tamperer: tuple[str, Tamperer], alice: Identity
) -> None:
    url, t = tamperer
    (oid,) = t.lines
    t.lines[oid] = unreadable(
        sign(Document(author=alice.public_key, created_at=NOW, title="Cure", body="Rest."), alice)
    )
    a = await make_node("a")
    only_a = publish(a, "Wells")
    b = await make_node("b", peers=[url, a.url])
    results = {r.url: r for r in await b.sync_now()}
    assert set(results) == {url, a.url}
    assert "misbehaved" in (results[url].error or "")
    assert results[url].refused == 1
    assert results[a.url].error is None and b.store.has(only_a)
    assert next(p for p in b.peers() if p.url == url).faults == 1


async def test_a_garbled_peer_header_is_not_a_server_error(make_node: MakeNode) -> None:
    a = await make_node("a")
    oid = publish(a, "Wells")
    headers = {"Commons-Peer": "http://[::1"}
    async with aiohttp.ClientSession() as http:
        async with http.post(a.url + "/sync/fetch", data=f'{{"ids": ["{oid.hex()}"]}}',
                             headers=headers) as resp:
            assert resp.status == 200, await resp.text()
        body = a.store.get(oid).to_bytes() + b"\n"
        proof = signed("/sync/push", body, receiver=a.public_key, at=NOW)
        async with http.post(a.url + "/sync/push", data=body,
                             headers={**headers, **proof}) as resp:
            assert resp.status == 200, await resp.text()
