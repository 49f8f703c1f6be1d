"""Adversarial suite: hostile requests to real nodes talking HTTP over loopback.

Findings F1 (push amplification), F3 (/status), F4 (false tombstones across
nodes), F8 (blocked authors are never served) and F11 (local API types).
Every loop here is bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from signing import STRANGER, signed

from commons.model.identity import Identity
from commons.model.objects import Document, Retraction, SignedObject, sign
from commons.storage.home import HomePaths
from sync.http.node import Node
from sync.protocol.messages import MAX_PUSH_LINES, MAX_REASONS, FetchRequest, PushReply

NOW = 1_800_000_000
MALLORY = Identity(bytes(range(64, 96)))
MakeNode = Callable[..., Awaitable[Node]]
STRANGER_ORIGIN = f"key:{STRANGER.public_key.hex()}"


def doc(author: Identity, title: str, at: int = NOW - 10) -> SignedObject:
    return sign(Document(author=author.public_key, created_at=at, title=title,
                         body=f"All about {title}."), author)


async def post(node: Node, path: str, body: bytes, *, sign: bool = True,
               headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """POST to a node as a stranger's node would: signed for it, unless told not to."""
    proof = signed(path, body, receiver=node.public_key, at=NOW) if sign else {}
    async with aiohttp.ClientSession() as http, http.post(
        node.url + path, data=body, headers={**proof, **(headers or {})}
    ) as resp:
        return resp.status, await resp.read()


# -- F1: a push costs bounded work and gets a bounded reply ---------------------


async def test_a_push_of_too_many_lines_is_refused_whole(make_node: MakeNode) -> None:
    node = await make_node("a")
    before = node.store.count()
    status, body = await post(node, "/sync/push", b"{}\n" * (MAX_PUSH_LINES + 1))
    assert status == 400 and f"more than {MAX_PUSH_LINES} objects" in body.decode()
    assert node.store.count() == before


async def test_a_push_of_garbage_gets_a_summary_not_one_reason_a_line(
    make_node: MakeNode,
) -> None:
    node = await make_node("a")
    status, body = await post(node, "/sync/push", b"{}\n" * MAX_PUSH_LINES)
    assert status == 200
    reply = PushReply.from_wire(body)
    assert len(reply.refused) == MAX_REASONS
    assert reply.more_refused == MAX_PUSH_LINES - MAX_REASONS and reply.accepted == 0
    assert len(body) < 8 * 1024
    # The node still answers its honest peers.
    assert (await node.status())["protocol"]


async def test_a_valid_push_is_still_accepted(make_node: MakeNode, alice: Identity) -> None:
    node = await make_node("a")
    good = doc(alice, "Solar cookers")
    status, body = await post(node, "/sync/push", good.to_bytes() + b"\n")
    assert status == 200 and PushReply.from_wire(body).accepted == 1
    assert node.store.has(good.id)


# -- F4: a stranger's retraction travels, but withdraws nothing -----------------


async def test_a_strangers_retraction_does_not_keep_a_document_from_spreading(
    make_node: MakeNode, alice: Identity
) -> None:
    a = await make_node("a")
    b = await make_node("b")
    target = doc(alice, "Village water rota")
    fake = sign(Retraction(author=MALLORY.public_key, created_at=NOW - 5, target=target.id),
                MALLORY)
    a.store.put(fake, now=NOW, origin="test")  # a never saw the document
    a.store.put(target, now=NOW, origin="test")  # then it arrives: still stored
    status, _ = await post(b, "/sync/push", fake.to_bytes() + b"\n")  # b hears it first
    assert status == 200 and b.store.has(fake.id)
    result = await b.sync_with(a.url)
    assert result.error is None
    assert b.store.has(target.id) and not b.store.is_withdrawn(target.id)


# -- F8: a blocked author's objects are never served, until unblocked -----------


async def test_blocked_authors_are_not_served_and_come_back_when_unblocked(
    make_node: MakeNode,
) -> None:
    a = await make_node("a")
    spam = doc(MALLORY, "Cheap watches")
    a.store.put(spam, now=NOW, origin="test")
    a.commons.block(MALLORY.public_key.hex(), "spam")
    status, body = await post(a, "/sync/fetch", FetchRequest((spam.id,)).to_wire())
    assert status == 200 and body == b""
    b = await make_node("b")
    await b.sync_with(a.url)
    assert not b.store.has(spam.id)
    a.commons.unblock(MALLORY.public_key.hex())
    status, body = await post(a, "/sync/fetch", FetchRequest((spam.id,)).to_wire())
    assert body.strip() == spam.to_bytes()


async def test_a_blocked_authors_new_objects_are_declined_then_fetched_after_unblock(
    make_node: MakeNode,
) -> None:
    a = await make_node("a")
    b = await make_node("b")
    spam = doc(MALLORY, "Cheap watches")
    a.store.put(spam, now=NOW, origin="test")
    b.commons.block(MALLORY.public_key.hex(), None)
    result = await b.sync_with(a.url)
    assert result.error is None and not b.store.has(spam.id) and result.declined >= 1
    b.commons.unblock(MALLORY.public_key.hex())
    for _ in range(100):  # the node forgets what the block made it decline, off the loop
        await b.sync_with(a.url)
        if b.store.has(spam.id):
            break
        await asyncio.sleep(0.05)
    assert b.store.has(spam.id)


# -- F11: the local API refuses wrong types with a 400 and a reason -------------


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("add_peer", {"url": 5}),
        ("sync_with", {"url": ["http://x:1"]}),
        ("ask", {"question": "why", "k": "eight"}),
        ("documents", {"author": {"a": 1}, "tag": None}),
    ],
)
async def test_wrong_types_on_the_local_api_are_a_400(
    make_node: MakeNode, method: str, kwargs: dict[str, Any]
) -> None:
    node = await make_node("a")
    info = HomePaths(node.commons.paths.root).node_info()
    assert info is not None
    async with aiohttp.ClientSession() as http, http.post(
        f"{info['api_url']}/api/{method}", data=json.dumps(kwargs),
        headers={"Authorization": f"Bearer {info['token']}"},
    ) as resp:
        status, payload = resp.status, await resp.json()
    assert status == 400 and "must be" in payload["error"]
    assert node.peers() == []  # add_peer url=5 stored nothing


# -- authenticated peers: only a signed request may push or offer ---------------


@pytest.mark.parametrize("path", ["/sync/push", "/sync/offer"])
async def test_unsigned_requests_may_not_push_or_offer(make_node: MakeNode, path: str) -> None:
    node = await make_node("a")
    status, body = await post(node, path, b'{"ids": []}', sign=False)
    assert status == 401 and b"signed" in body


async def test_unsigned_requests_may_still_reconcile_and_fetch(make_node: MakeNode) -> None:
    node = await make_node("a")
    status, _ = await post(node, "/sync/fetch", FetchRequest(()).to_wire(), sign=False)
    assert status == 200


async def test_a_request_signed_for_another_node_is_refused(
    make_node: MakeNode, alice: Identity
) -> None:
    a = await make_node("a")
    b = await make_node("b")
    body = doc(alice, "Replayed").to_bytes() + b"\n"
    proof = signed("/sync/push", body, receiver=a.public_key, at=NOW)
    async with aiohttp.ClientSession() as http, http.post(
        b.url + "/sync/push", data=body, headers=proof
    ) as resp:
        assert resp.status == 401 and "does not verify" in await resp.text()
    assert b.store.count("document") == a.store.count("document")


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"Commons-Time": str(NOW - 3600)}, "check the sender's clock"),
        ({"Commons-Key": "zz"}, "64 lowercase hex"),
        ({"Commons-Signature": "00" * 64}, "does not verify"),
    ],
)
async def test_a_bad_proof_is_refused_before_any_work(
    make_node: MakeNode, alice: Identity, change: dict[str, str], says: str
) -> None:
    node = await make_node("a")
    body = doc(alice, "Forged").to_bytes() + b"\n"
    proof = {**signed("/sync/push", body, receiver=node.public_key, at=NOW), **change}
    async with aiohttp.ClientSession() as http, http.post(
        node.url + "/sync/push", data=body, headers=proof
    ) as resp:
        assert resp.status == 401 and says in await resp.text()
    assert node.store.count("document") == 0 or not node.store.has(doc(alice, "Forged").id)


async def test_a_tampered_body_breaks_the_proof(make_node: MakeNode, alice: Identity) -> None:
    node = await make_node("a")
    body = doc(alice, "Original").to_bytes() + b"\n"
    proof = signed("/sync/push", body, receiver=node.public_key, at=NOW)
    other = doc(alice, "Swapped").to_bytes() + b"\n"
    async with aiohttp.ClientSession() as http, http.post(
        node.url + "/sync/push", data=other, headers=proof
    ) as resp:
        assert resp.status == 401


async def test_a_claimed_url_is_credited_only_to_the_key_it_belongs_to(
    make_node: MakeNode, alice: Identity
) -> None:
    a = await make_node("a")
    b = await make_node("b")
    await b.sync_with(a.url)
    await a.sync_with(b.url)  # a now knows b's url bound to b's key (from b's record)
    assert any(p.url == b.url and p.key == b.public_key.hex() for p in a.peers())
    body = doc(alice, "Not from b").to_bytes() + b"\n"  # a stranger claims to be b
    status, reply = await post(a, "/sync/push", body, headers={"Commons-Peer": b.url})
    assert status == 200 and PushReply.from_wire(reply).accepted == 1
    row = next(p for p in a.peers() if p.url == b.url)
    assert row.received == 0  # not credited to b
    assert a.store.get_stored(doc(alice, "Not from b").id).origin == STRANGER_ORIGIN
    assert a.origin_of(None, b.url, "127.0.0.1") == "peer:127.0.0.1"


# -- F6: bit rot is never served; the bad copy is set aside and fetched again ----


async def test_a_rotten_object_is_quarantined_not_served_and_fetched_again(
    make_node: MakeNode, alice: Identity
) -> None:
    a = await make_node("a")
    b = await make_node("b")
    c = await make_node("c")
    good = doc(alice, "Clean water")
    for node in (a, c):
        node.store.put(good, now=NOW, origin="test")
    rotten = good.to_bytes().replace(b"Clean water", b"Clean wafer")
    with a.store.transaction() as db:  # one flipped byte on a's disk
        db.execute("UPDATE objects SET raw = ? WHERE id = ?", (rotten, good.id))
    result = await b.sync_with(a.url)
    assert result.error is None and result.refused == 0
    assert not b.store.has(good.id)  # nothing bad was served
    assert (await a.status())["quarantined"] == 1 and not a.store.has(good.id)
    assert all(p.faults == 0 for p in b.peers())
    await a.sync_with(c.url)  # the next reconciliation fetches a good copy
    assert a.store.get(good.id).to_bytes() == good.to_bytes()
    assert (await a.status())["quarantined"] == 0
    await b.sync_with(a.url)
    assert b.store.has(good.id)
