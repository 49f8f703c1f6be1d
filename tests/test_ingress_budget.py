"""F7 (floods): the ingress budget per peer key and for the whole node.

The budget itself (pure, time passed in), then real nodes over loopback: a push
over budget gets 429 before any line is parsed, an offer wants no more than the
budget allows, a sync fetches no more from one peer, and another peer is not
held back by the first one's flood. The flood between real processes is in
test_hostile_processes.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from signing import STRANGER, signed

from commons.model.identity import Identity
from commons.model.objects import Document, SignedObject, sign
from sync.gossip.budget import Buckets, IngressBudget
from sync.gossip.policy import Policy, PolicyError, RateLimit
from sync.http.node import Node
from sync.protocol.messages import Offer, OfferReply, PushReply

NOW = 1_800_000_000
MALLORY = Identity(bytes(range(64, 96)))
HONEST = Identity(bytes(range(140, 172)))
MakeNode = Callable[..., Awaitable[Node]]


def budget(per_peer: int | None = 10, total: int | None = 25,
           per_peer_bytes: int | None = None) -> Policy:
    return Policy(
        ingress_objects_per_peer=RateLimit(per_peer, 60) if per_peer else None,
        ingress_objects_total=RateLimit(total, 60) if total else None,
        ingress_bytes_per_peer=RateLimit(per_peer_bytes, 60) if per_peer_bytes else None,
        ingress_bytes_total=None,
    )


# -- the budget, pure -----------------------------------------------------------


def test_a_bucket_refills_evenly_and_may_be_overdrawn() -> None:
    buckets = Buckets(RateLimit(60, 60))
    assert buckets.level("a", 0) == 60
    buckets.spend("a", 90, 0)  # a fetch charged after the fact may overdraw
    assert buckets.level("a", 0) == -30
    assert buckets.wait("a", 10, 0) == pytest.approx(40.0)
    assert buckets.level("a", 40) == pytest.approx(10)
    assert buckets.level("b", 0) == 60  # another key has its own bucket
    assert Buckets(None).wait("a", 10**9, 0) == 0.0


def test_one_peer_cannot_spend_more_than_its_share_nor_all_of_the_total() -> None:
    ingress = IngressBudget(budget(per_peer=10, total=25))
    assert ingress.admit("mallory", 10, 100, 0) == 0.0
    assert ingress.admit("mallory", 1, 10, 0) > 0  # its share is spent
    assert ingress.allowance("mallory", 0) == 0
    assert ingress.allowance("honest", 0) == 10  # another peer still has its own
    assert ingress.admit("honest", 10, 100, 0) == 0.0
    assert ingress.allowance("third", 0) == 5  # the node-wide budget has 5 left
    assert ingress.admit("third", 6, 60, 0) > 0
    assert ingress.admit("mallory", 1, 10, 6) == 0.0  # a minute's tenth later: one more
    status = ingress.describe()
    assert status["admitted_objects"] == 21 and status["throttled"] == 2
    assert status["objects_per_peer"] == "10/minute" and status["objects_total"] == "25/minute"
    assert IngressBudget(Policy()).describe()["bytes_per_peer"] == "300MB/hour"


def test_a_push_larger_than_the_bucket_enters_when_the_bucket_is_full() -> None:
    ingress = IngressBudget(budget(per_peer=10, total=None))
    assert ingress.admit("a", 512, 1000, 0) == 0.0  # never refused forever
    assert ingress.admit("a", 512, 1000, 0) > 0  # but the overdraft waits


def test_a_byte_budget_overdrawn_stops_the_allowance() -> None:
    ingress = IngressBudget(budget(per_peer=100, total=None, per_peer_bytes=1000))
    ingress.charge("a", 2, 1500, 0)
    assert ingress.allowance("a", 0) == 0


def test_budgets_come_from_the_policy_file_and_flags() -> None:
    policy = Policy.from_json({"ingress_per_peer": "600/minute",
                               "ingress_bytes_per_peer": "50MB/hour"})
    assert policy.ingress_objects_per_peer == RateLimit(600, 60)
    assert policy.ingress_bytes_per_peer == RateLimit(50 * 10**6, 3600)
    flagged = policy.with_ingress({"ingress_total": "1000/hour"}, where="serve")
    assert flagged.ingress_objects_total == RateLimit(1000, 3600)
    assert flagged.ingress_objects_per_peer == RateLimit(600, 60)
    with pytest.raises(PolicyError, match="--ingress-per-peer"):
        Policy().with_ingress({"ingress_per_peer": "lots"}, where="serve")
    with pytest.raises(PolicyError, match="ingress_total"):
        Policy.from_json({"ingress_total": "5MB/hour"})


# -- real nodes over loopback ---------------------------------------------------


def docs(author: Identity, count: int, prefix: str = "Flood") -> list[SignedObject]:
    return [sign(Document(author=author.public_key, created_at=NOW - 100 + i,
                          title=f"{prefix} {i}", body=f"Page {i} of {prefix}."), author)
            for i in range(count)]


async def post(node: Node, path: str, body: bytes,
               sender: Identity = STRANGER) -> tuple[int, bytes, dict[str, str]]:
    proof = signed(path, body, receiver=node.public_key, at=NOW, sender=sender)
    async with aiohttp.ClientSession() as http, http.post(
        node.url + path, data=body, headers=proof
    ) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


def lines(objs: list[SignedObject]) -> bytes:
    return b"".join(o.to_bytes() + b"\n" for o in objs)


async def test_a_flooding_key_gets_429_before_its_push_is_parsed(make_node: MakeNode) -> None:
    node = await make_node("mirror", eager=False, policy=budget(per_peer=10, total=25))
    before = node.store.count()
    flood = docs(MALLORY, 30)
    status, body, _ = await post(node, "/sync/push", lines(flood[:10]), sender=MALLORY)
    assert status == 200 and PushReply.from_wire(body).accepted == 10
    status, body, headers = await post(node, "/sync/push", lines(flood[10:20]), sender=MALLORY)
    assert status == 429 and int(headers["Retry-After"]) >= 1
    assert "ingress budget" in body.decode()
    # Garbage is refused by the budget too: it was never parsed.
    status, _, _ = await post(node, "/sync/push", b"{}\n" * 5, sender=MALLORY)
    assert status == 429
    assert node.store.count() == before + 10
    # While its budget is spent, the key is turned away before its proof is even checked;
    # that spends nothing, and another key's bad proof is still a 401.
    async with aiohttp.ClientSession() as http:
        for who, expected in ((MALLORY, 429), (HONEST, 401)):
            headers = {**signed("/sync/push", b"x\n", receiver=node.public_key, at=NOW,
                                sender=who), "Commons-Signature": "00" * 64}
            async with http.post(node.url + "/sync/push", data=b"x\n", headers=headers) as resp:
                assert resp.status == expected
    # An honest key is not held back by the flood.
    honest = docs(HONEST, 1, "Well water")[0]
    status, body, _ = await post(node, "/sync/push", lines([honest]), sender=HONEST)
    assert status == 200 and node.store.has(honest.id)
    ingress = (await node.status())["ingress"]
    assert ingress["throttled"] == 3 and ingress["admitted_objects"] == 11
    assert ingress["most_throttled"][0]["peer"] == f"key:{MALLORY.public_key.hex()}"


async def test_an_offer_wants_no_more_than_the_budget_allows(make_node: MakeNode) -> None:
    node = await make_node("mirror", eager=False, policy=budget(per_peer=4, total=None))
    offered = tuple(o.id for o in docs(MALLORY, 9))
    status, body, _ = await post(node, "/sync/offer", Offer(offered).to_wire(), sender=MALLORY)
    assert status == 200
    assert len(OfferReply.from_wire(body, offered).want) == 4
    assert (await node.status())["ingress"]["held_back"] == 5


async def test_a_sync_fetches_no_more_from_one_peer_than_its_budget(
    make_node: MakeNode,
) -> None:
    source = await make_node("source", eager=False)
    for obj in docs(MALLORY, 12):
        source.store.put(obj, now=NOW, origin="test")
    taker = await make_node("taker", eager=False, policy=budget(per_peer=5, total=None))
    before = taker.store.count()
    result = await taker.sync_with(source.url)
    assert result.error is None
    assert taker.store.count() - before == 5  # the rest waits for the budget to refill
    assert (await taker.status())["ingress"]["held_back"] >= 7
    again = await taker.sync_with(source.url)  # the clock stands still: nothing more yet
    assert again.error is None and taker.store.count() - before == 5
