"""The gossip rules without sockets: sessions and exchanges wired over an in-memory link.

`MemoryPeer` stands in for a node's store and endpoints; `Link` carries out an
exchange's steps between two of them (like h11's ConnectionPair) and records
what crossed, so the tests assert on the decisions themselves.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commons.model.identity import Identity
from commons.model.objects import PeerRecord, SignedObject, sign
from sync.gossip import exchange as exchange_module
from sync.gossip.exchange import (
    FETCH_BATCH,
    Exchange,
    FindSizes,
    FindWanted,
    Finished,
    Notice,
    Outcome,
    ReadObjects,
    SendFetch,
    SendOffer,
    SendPush,
    SendReconcile,
    Step,
    TakeIn,
)
from sync.gossip.intake import Intake
from sync.gossip.peers import PeerUrlError
from sync.gossip.policy import Policy
from sync.gossip.session import FRESH_SECONDS, GossipSession, PeerLimits
from sync.protocol.errors import LocalProtocolError, RemoteProtocolError
from sync.protocol.messages import MAX_BATCH_BYTES, MAX_IDS, OfferReply, PushReply, Rejected
from sync.protocol.negentropy import Reconciler, SortedItems

NOW = 1_800_000_000
A = "http://a.example:7400"
B = "http://b.example:7400"
C = "http://c.example:7400"


def oid(n: int) -> bytes:
    return n.to_bytes(32, "big")


class PeerUnreachable(Exception):
    """What the link raises instead of a reply, as the HTTP client's PeerUnavailable."""


@dataclass
class MemoryPeer:
    """A node's objects and its answers to gossip requests, all in memory.

    An object's line is b"obj:<hex id>:<padding>"; a line starting b"bad" is
    invalid (the sender's fault); ids in `declines` are refused by policy.
    """

    objects: dict[bytes, tuple[int, bytes]] = field(default_factory=dict)
    declines: set[bytes] = field(default_factory=set)
    declined: set[bytes] = field(default_factory=set)
    max_reply: int | None = None  # at most this many lines per fetch reply
    serve_bad: bool = False

    def add(self, n: int, created_at: int = NOW, size: int = 10) -> bytes:
        i = oid(n)
        self.objects[i] = (created_at, b"obj:" + i.hex().encode() + b":" + b"x" * size)
        return i

    def items(self) -> SortedItems:
        return SortedItems((ts, i) for i, (ts, _) in self.objects.items())

    def ids(self) -> set[bytes]:
        return set(self.objects)

    # -- the store side --------------------------------------------------------

    def wanted(self, ids: Sequence[bytes]) -> list[bytes]:
        return [i for i in ids if i not in self.objects and i not in self.declined]

    def sizes(self, ids: Sequence[bytes]) -> list[tuple[bytes, int]]:
        held = sorted((self.objects[i][0], i) for i in ids if i in self.objects)
        return [(i, len(self.objects[i][1])) for _, i in held]

    def raw_objects(self, ids: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
        held = sorted((self.objects[i][0], i) for i in ids if i in self.objects)
        return [(i, self.objects[i][1]) for _, i in held]

    def take_in(self, lines: Sequence[bytes], expected: frozenset[bytes] | None) -> Intake:
        report = Intake()
        for line in lines:
            if line.startswith(b"bad"):
                report.refused.append(Rejected("", "its signature does not match"))
                continue
            i = bytes.fromhex(line.split(b":")[1].decode())
            if expected is not None and i not in expected:
                report.refused.append(Rejected("", "was not asked for"))
                continue
            report.received_ids.add(i)
            if i in self.declines:
                self.declined.add(i)
                report.declined.append(Rejected(i.hex(), "not kept here"))
            elif i in self.objects:
                report.duplicate += 1
            else:
                self.objects[i] = (NOW, line)
                report.accepted.append(i)
        return report

    # -- the endpoints ---------------------------------------------------------

    def respond(self, message: bytes) -> bytes:
        return Reconciler(self.items()).respond(message)

    def fetch(self, ids: Sequence[bytes]) -> list[bytes]:
        if self.serve_bad:
            return [b"bad line"]
        lines = [raw for _, raw in self.raw_objects(ids)]
        return lines[: self.max_reply] if self.max_reply is not None else lines

    def push(self, lines: Sequence[bytes]) -> PushReply:
        report = self.take_in(lines, None)
        return PushReply(len(report.accepted), report.duplicate, tuple(report.declined),
                         tuple(report.refused))

    def offer(self, ids: Sequence[bytes]) -> OfferReply:
        return OfferReply(tuple(self.wanted(ids)))


Fault = Callable[[Step], Exception | None]


class Link:
    """Carries out an exchange's steps between `local` and `remote`, recording each step."""

    def __init__(self, local: MemoryPeer, remote: MemoryPeer, fault: Fault | None = None) -> None:
        self.local, self.remote = local, remote
        self.fault = fault
        self.steps: list[Step] = []
        self.notices: list[Notice] = []

    def run(self, exchange: Exchange) -> Exchange:
        local, remote = self.local, self.remote
        while not exchange.finished:
            step = exchange.next_step()
            self.steps.append(step)
            error = self.fault(step) if self.fault is not None else None
            if isinstance(error, PeerUnreachable):
                exchange.peer_unavailable(str(error))
            elif isinstance(error, RemoteProtocolError):
                exchange.peer_misbehaved(str(error))
            elif isinstance(step, SendReconcile):
                exchange.receive_reconcile(remote.respond(step.message))
            elif isinstance(step, FindWanted):
                exchange.receive_wanted(local.wanted(step.ids))
            elif isinstance(step, SendFetch):
                exchange.receive_fetched(remote.fetch(step.ids))
            elif isinstance(step, TakeIn):
                exchange.receive_intake(local.take_in(step.lines, step.expected))
            elif isinstance(step, FindSizes):
                exchange.receive_sizes(local.sizes(step.ids))
            elif isinstance(step, ReadObjects):
                exchange.receive_objects(local.raw_objects(step.ids))
            elif isinstance(step, SendPush):
                exchange.receive_push_reply(remote.push(step.lines))
            elif isinstance(step, SendOffer):
                exchange.receive_offer_reply(remote.offer(step.ids))
            self.notices.extend(exchange.take_notices())
        return exchange

    def sizes(self, kind: type) -> list[int]:
        """How many ids (or lines) each step of `kind` carried."""
        return [len(getattr(s, "ids", getattr(s, "lines", ()))) for s in self.steps
                if isinstance(s, kind)]


def session_with(*urls: str, policy: Policy | None = None, fanout: int = 3,
                 offer_fanout: int = 2) -> GossipSession:
    session = GossipSession(policy or Policy(), own_key=b"\x01" * 32, fanout=fanout,
                            offer_fanout=offer_fanout)
    session.load_peers([], bootstrap=list(urls), records=[], now=NOW)
    session.table.set_own_urls([A])
    return session


def sync(session: GossipSession, local: MemoryPeer, remote: MemoryPeer, url: str = B,
         fault: Fault | None = None) -> tuple[Link, Exchange]:
    link = Link(local, remote, fault)
    return link, link.run(session.start_sync(url, local.items()))


# -- a sync ---------------------------------------------------------------------


def test_two_peers_converge_and_the_peer_gains_standing() -> None:
    a, b = MemoryPeer(), MemoryPeer()
    for n in range(5):
        a.add(n)
    for n in range(3, 9):
        b.add(n)
    session = session_with(B)
    link, exchange = sync(session, a, b)
    assert a.ids() == b.ids() == {oid(n) for n in range(9)}
    result = session.finish_sync(exchange, NOW, random.Random(0))
    assert result.error is None
    assert (result.fetched, result.pushed, result.round_trips) == (4, 3, 1)
    assert [type(s) for s in link.steps] == [SendReconcile, FindWanted, SendFetch, TakeIn,
                                            FindSizes, ReadObjects, SendPush]
    peer = session.table.get(B)
    assert peer is not None and peer.last_seen == NOW and peer.received == 4 and peer.sent == 3
    assert [n.kind for n in link.notices] == ["fetched", "pushed"]
    assert [n.kind for n in session.take_notices()] == ["sync"]


def test_in_sync_peers_exchange_one_round_trip_and_nothing_else() -> None:
    a, b = MemoryPeer(), MemoryPeer()
    for n in range(50):
        a.add(n)
        b.add(n)
    link, exchange = sync(session_with(B), a, b)
    assert [type(s) for s in link.steps] == [SendReconcile]
    assert exchange.outcome is Outcome.OK and exchange.round_trips == 1


def test_fetches_go_in_batches_and_ask_again_for_what_a_reply_left_out() -> None:
    a, b = MemoryPeer(), MemoryPeer(max_reply=200)
    for n in range(600):
        b.add(n, created_at=NOW - n)
    link, exchange = sync(session_with(B), a, b)
    assert a.ids() == b.ids() and exchange.fetched == 600
    assert link.sizes(SendFetch) == [FETCH_BATCH, FETCH_BATCH - 200, FETCH_BATCH,
                                     FETCH_BATCH - 200, 600 - 2 * FETCH_BATCH]


def test_an_empty_fetch_reply_moves_on_without_blame() -> None:
    a, b = MemoryPeer(), MemoryPeer(max_reply=0)  # it had them, and retracted them meanwhile
    for n in range(3):
        b.add(n)
    session = session_with(B)
    _, exchange = sync(session, a, b)
    assert exchange.outcome is Outcome.OK and exchange.fetched == 0
    peer = session.table.get(B)
    result = session.finish_sync(exchange, NOW, random.Random(0))
    assert result.error is None and peer is not None and peer.faults == 0


def test_pushes_are_batched_by_count_and_by_bytes() -> None:
    a, b = MemoryPeer(), MemoryPeer()
    for n in range(MAX_IDS + 10):
        a.add(n, created_at=NOW - n)
    big = [a.add(10_000 + n, size=MAX_BATCH_BYTES // 2) for n in range(3)]
    link, exchange = sync(session_with(B), a, b)
    assert b.ids() == a.ids() and exchange.pushed == len(a.ids())
    # Oldest first: 512 small ones, then the last 10 with the first big one, then each
    # big one alone (two of them are over MAX_BATCH_BYTES).
    assert link.sizes(SendPush) == [MAX_IDS, 11, 1, 1]
    assert all(i in b.objects for i in big)


def test_ids_the_peer_declined_are_not_pushed_again() -> None:
    a, b = MemoryPeer(), MemoryPeer(declines={oid(1), oid(2)})
    for n in range(4):
        a.add(n)
    session = session_with(B)
    _, first = sync(session, a, b)
    assert first.pushed == 2 and b.declined == {oid(1), oid(2)}
    link, second = sync(session, a, b)
    assert second.outcome is Outcome.OK and second.pushed == 0
    assert FindSizes not in [type(s) for s in link.steps]


def test_garbled_declined_ids_in_a_push_reply_are_ignored() -> None:
    exchange = Exchange.offer(B, [oid(1)])
    exchange.receive_offer_reply(OfferReply((oid(1),)))
    exchange.receive_sizes([(oid(1), 10)])
    exchange.receive_objects([(oid(1), b"obj")])
    garbled = (Rejected("zz" * 32, "no"), Rejected(" " * 64, "no"), Rejected("ab", "no"),
               Rejected(oid(7).hex(), "no"))
    exchange.receive_push_reply(PushReply(0, 0, declined=garbled))
    assert exchange.outcome is Outcome.OK


# -- misbehaving and unreachable peers --------------------------------------------


def test_a_peer_serving_invalid_objects_is_blamed_and_dropped_after_three() -> None:
    a, b = MemoryPeer(), MemoryPeer(serve_bad=True)
    b.add(1)
    session = session_with(B)
    for attempt in range(1, 4):
        _, exchange = sync(session, a, b)
        assert exchange.outcome is Outcome.MISBEHAVED and exchange.refused == 1
        result = session.finish_sync(exchange, NOW, random.Random(0))
        assert result.error == (
            f"{B} misbehaved: served an invalid object: its signature does not match")
        peer = session.table.get(B)
        assert peer is not None and peer.faults == attempt
    kinds = [n.kind for n in session.take_notices()]
    assert kinds.count("fault") == 3 and kinds[-1] == "dropped"
    assert session.choose_round(NOW, random.Random(0)) == []
    assert a.ids() == set()


def test_a_broken_reconciliation_reply_is_the_peers_fault() -> None:
    a = MemoryPeer()
    a.add(1)
    exchange = Exchange.sync(B, a.items())
    exchange.receive_reconcile(b"\x61\xff\xff")
    assert exchange.finished and exchange.outcome is Outcome.MISBEHAVED
    assert exchange.round_trips == 1


def test_reconciliation_that_does_not_end_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exchange_module, "MAX_ROUND_TRIPS", 1)
    a, b = MemoryPeer(), MemoryPeer()
    for n in range(3000):
        (a if n % 2 else b).add(n, created_at=NOW - n)
    _, exchange = sync(session_with(B), a, b)
    assert exchange.outcome is Outcome.MISBEHAVED
    assert exchange.reason == "reconciliation did not end in 1 round trips"


def test_an_unreachable_peer_backs_off_and_is_not_chosen_until_then() -> None:
    a, b = MemoryPeer(), MemoryPeer()
    session = session_with(B)
    _, exchange = sync(session, a, b, fault=lambda step: PeerUnreachable(f"{B} cannot be reached"))
    result = session.finish_sync(exchange, NOW, random.Random(0))
    assert result.error == f"{B} cannot be reached"
    peer = session.table.get(B)
    assert peer is not None and peer.failures == 1 and peer.faults == 0
    assert peer.next_attempt > NOW
    assert session.choose_round(NOW, random.Random(0)) == []
    assert session.choose_round(int(peer.next_attempt) + 1, random.Random(0)) == [B]
    (notice,) = session.take_notices()
    assert notice.kind == "unreachable" and "next try in" in notice.message


def test_a_failure_midway_through_a_push_counts_nothing_pushed() -> None:
    a, b = MemoryPeer(), MemoryPeer()
    for n in range(MAX_IDS + 1):
        a.add(n, created_at=NOW - n)
    pushes = 0

    def second_push_fails(step: Step) -> Exception | None:
        nonlocal pushes
        if isinstance(step, SendPush):
            pushes += 1
            if pushes == 2:
                return RemoteProtocolError("a push reply has missing or malformed fields")
        return None

    link, exchange = sync(session_with(B), a, b, fault=second_push_fails)
    assert exchange.outcome is Outcome.MISBEHAVED and exchange.pushed == 0
    assert "pushed" not in [n.kind for n in link.notices]


# -- rounds, refusals, peers by hand ------------------------------------------------


def test_a_round_chooses_up_to_fanout_peers_not_already_syncing() -> None:
    urls = [f"http://p{n}.example:7400" for n in range(6)]
    session = session_with(*urls, fanout=3)
    chosen = session.choose_round(NOW, random.Random(1))
    assert len(chosen) == 3 and set(chosen) <= set(urls)
    busy = set(urls[:5])
    assert session.choose_round(NOW, random.Random(1), busy=busy) == [urls[5]]
    session.round_finished(NOW + 5)
    assert (session.rounds, session.last_round) == (1, NOW + 5)


def test_no_sync_with_ourselves_or_a_blocked_peer() -> None:
    policy = Policy.from_json({"block_peers": ["c.example"]})
    session = session_with(B, policy=policy)
    assert session.refusal(A) == f"{A} is this node itself"
    assert session.refusal(C) == "this node's policy blocks that peer"
    assert session.refusal(B) is None
    with pytest.raises(PeerUrlError, match="blocks"):
        session.add_peer(C, NOW)
    with pytest.raises(PeerUrlError, match="this node itself"):
        session.add_peer(A, NOW)


def test_adding_by_hand_forgives_a_dropped_peer() -> None:
    session = session_with(B)
    for _ in range(3):
        session.table.fault(B, NOW)
    assert session.table.get(B).state == "dropped"  # type: ignore[union-attr]
    peer = session.add_peer(B, NOW)
    assert peer.state == "active" and peer.faults == 0
    assert session.remove_peer(B) and not session.remove_peer(B)
    assert [n.kind for n in session.take_notices()] == ["peer", "peer"]


def test_served_and_pushed_to_us_count_for_the_peer() -> None:
    session = session_with(B)
    session.served(B + "/", 4)
    session.served("http://[::1", 4)  # a garbled header: ignored
    session.pushed_to_us(B, 2, ["bad signature"])
    peer = session.table.get(B)
    assert peer is not None and (peer.sent, peer.received) == (4, 2)
    assert [n.kind for n in session.take_notices()] == ["received", "refused"]


# -- fresh objects and offers ---------------------------------------------------------


@dataclass(frozen=True)
class Fresh:
    """Just what the session reads of a newly stored object."""

    id: bytes
    kind: str = "document"
    created_at: int = NOW


def offered(exchange: Exchange) -> int:
    step = exchange.next_step()
    assert isinstance(step, SendOffer)
    return len(step.ids)


def record(identity: Identity, url: str, created_at: int = NOW) -> SignedObject:
    return sign(PeerRecord(author=identity.public_key, created_at=created_at, addresses=(url,),
                           name="carol", mirror=False), identity)


def test_only_young_objects_are_offered_and_only_while_live(alice: Identity) -> None:
    session = session_with(B)
    young = record(alice, C)
    old = record(alice, C, created_at=NOW - FRESH_SECONDS - 1)
    assert not session.object_added(young, "local", NOW)
    # A peer record teaches us of its peer.
    assert session.table.get(C) is not None
    assert [n.kind for n in session.take_notices()] == ["peer"]
    session.live = True
    assert session.object_added(young, "local", NOW)
    assert not session.object_added(old, "local", NOW)
    session.eager = False
    assert not session.object_added(young, "local", NOW)
    assert session.has_fresh


def test_offers_go_to_a_few_peers_but_never_back_to_the_origin() -> None:
    urls = [f"http://p{n}.example:7400" for n in range(4)]
    session = session_with(*urls, offer_fanout=2)
    session.live = True
    for n in range(MAX_IDS + 3):
        session.object_added(cast(SignedObject, Fresh(oid(n))), urls[0], NOW)
    offers = session.plan_offers(NOW, random.Random(3))
    assert len(offers) == 2 and urls[0] not in {o.url for o in offers}
    assert [offered(o) for o in offers] == [MAX_IDS, MAX_IDS]
    assert session.has_fresh
    assert [offered(o) for o in session.plan_offers(NOW, random.Random(3))] == [3, 3]
    assert not session.has_fresh and session.plan_offers(NOW, random.Random(3)) == []


def test_an_offer_pushes_what_the_peer_wants_and_counts_it() -> None:
    a, b = MemoryPeer(), MemoryPeer()
    ids = [a.add(n) for n in range(3)]
    b.add(0)
    session = session_with(B)
    link = Link(a, b)
    exchange = link.run(Exchange.offer(B, ids))
    assert exchange.wanted == (ids[1], ids[2]) and exchange.pushed == 2
    session.finish_offer(exchange, NOW, random.Random(0))
    peer = session.table.get(B)
    assert peer is not None and peer.sent == 2
    assert [n.kind for n in session.take_notices()] == ["offered"]
    nothing = link.run(Exchange.offer(B, ids))
    session.finish_offer(nothing, NOW, random.Random(0))
    assert nothing.wanted == () and session.take_notices() == []


def test_a_wrong_answer_to_an_offer_is_a_fault_without_a_drop_notice() -> None:
    session = session_with(B)
    link = Link(MemoryPeer(), MemoryPeer(),
                fault=lambda step: RemoteProtocolError("the peer wants ids it was not offered"))
    exchange = link.run(Exchange.offer(B, [oid(1)]))
    session.finish_offer(exchange, NOW, random.Random(0))
    peer = session.table.get(B)
    assert peer is not None and peer.faults == 1
    (notice,) = session.take_notices()
    assert notice.kind == "fault" and "answered an offer wrongly" in notice.message


# -- using it wrongly is our bug: LocalProtocolError ----------------------------------


def test_answering_the_wrong_step_is_a_local_protocol_error() -> None:
    exchange = Exchange.sync(B, SortedItems())
    with pytest.raises(LocalProtocolError, match="SendReconcile"):
        exchange.receive_wanted([])
    exchange.peer_unavailable("gone")
    assert isinstance(exchange.next_step(), Finished)
    with pytest.raises(LocalProtocolError):
        exchange.peer_misbehaved("twice")
    session = GossipSession(Policy())
    with pytest.raises(LocalProtocolError, match="an unfinished sync"):
        session.finish_sync(Exchange.sync(B, SortedItems()), NOW, random.Random(0))
    with pytest.raises(LocalProtocolError, match="needs a finished offer"):
        session.finish_offer(exchange, NOW, random.Random(0))


def test_steps_validate_what_they_carry() -> None:
    with pytest.raises(LocalProtocolError):
        SendFetch(tuple(oid(n) for n in range(MAX_IDS + 1)))
    with pytest.raises(LocalProtocolError):
        FindWanted(())
    with pytest.raises(LocalProtocolError):
        SendPush(())
    with pytest.raises(LocalProtocolError):
        Notice("gossip", "an unknown kind")


def test_peer_limits_block_and_rate_limit_by_address() -> None:
    limits = PeerLimits(Policy.from_json({"rate_limit_per_peer": "2/minute",
                                          "block_peers": ["10.0.0.9"]}))
    assert limits.blocks("10.0.0.9") and not limits.blocks("10.0.0.1")
    assert limits.admit("10.0.0.1", None, NOW) == 0.0
    assert limits.admit("10.0.0.1", 100, NOW) == 0.0
    assert limits.admit("10.0.0.1", None, NOW) > 0
    assert limits.admit("10.0.0.2", None, NOW) == 0.0


# -- a peer's bytes can only end an exchange as the peer's fault ------------------------


@settings(max_examples=200, deadline=None)
@given(reply=st.binary(max_size=300))
def test_any_reconciliation_reply_is_handled_without_raising(reply: bytes) -> None:
    items = SortedItems((NOW, oid(n)) for n in range(40))
    exchange = Exchange.sync(B, items)
    exchange.receive_reconcile(reply)
    assert exchange.outcome in (None, Outcome.MISBEHAVED, Outcome.OK)


@settings(max_examples=200, deadline=None)
@given(ids=st.lists(st.text(max_size=70), max_size=5))
def test_any_declined_ids_in_a_push_reply_are_handled(ids: list[str]) -> None:
    exchange = Exchange.offer(B, [oid(1)])
    exchange.receive_offer_reply(OfferReply((oid(1),)))
    exchange.receive_sizes([(oid(1), 10)])
    exchange.receive_objects([(oid(1), b"obj")])
    exchange.receive_push_reply(PushReply(0, 0, declined=tuple(Rejected(i, "no") for i in ids)))
    assert exchange.outcome is Outcome.OK


def test_the_gossip_core_imports_no_io() -> None:
    """The sans-IO modules (and the node's Protocols) pull in no event loop, HTTP or sockets."""
    import subprocess
    import sys

    code = ("import sys, sync.gossip.session, sync.gossip.exchange, sync.api;"
            " print(sorted(m for m in ('asyncio', 'aiohttp', 'socket') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_what_a_peer_declines_after_an_offer_is_not_pushed_by_the_next_sync() -> None:
    a, b = MemoryPeer(), MemoryPeer(declines={oid(1)})
    a.add(1)
    session = session_with(B)
    session.live = True
    session.object_added(cast(SignedObject, Fresh(oid(1))), "local", NOW)
    (offer,) = session.plan_offers(NOW, random.Random(0))
    Link(a, b).run(offer)
    assert offer.wanted == (oid(1),) and b.declined == {oid(1)}
    link, exchange = sync(session, a, b)
    assert exchange.outcome is Outcome.OK and FindSizes not in [type(s) for s in link.steps]
