"""Adversarial suite, without sockets: what a hostile peer's objects can do to a store.

Findings F4 (false tombstones), F5 (address hijack), F8 (block), F3 (profile
floods) and F11 (local API argument types) of the hostile-peer review.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from embedders import embedder_for_tests

from commons.api import LocalApi
from commons.ingest import Extracted
from commons.model.errors import NotFound
from commons.model.identity import Identity
from commons.model.objects import Document, PeerRecord, Profile, Retraction, SignedObject, sign
from commons.search.vectors import memory_vectors
from commons.service import Commons
from commons.storage.home import HomePaths
from commons.storage.store import ObjectStore
from sync.gossip import intake
from sync.gossip.peers import PeerTable
from sync.gossip.policy import Declined, Policy
from sync.http.local_api import BadArguments, bind_arguments

NOW = 1_800_000_000
MALLORY = Identity(bytes(range(64, 96)))


def doc(author: Identity, title: str, at: int = NOW - 10) -> SignedObject:
    return sign(Document(author=author.public_key, created_at=at, title=title,
                         body=f"All about {title}."), author)


def retraction(author: Identity, target: bytes, at: int = NOW - 5) -> SignedObject:
    return sign(Retraction(author=author.public_key, created_at=at, target=target), author)


def take(store: ObjectStore, *objs: SignedObject, policy: Policy | None = None,
         blocked: frozenset[bytes] = frozenset()) -> intake.Intake:
    policy = policy or Policy()
    return intake.take_in(store, [o.to_bytes() for o in objs], clock=lambda: NOW,
                          origin="http://peer:1", policy=policy,
                          declined=Declined(store, policy), blocked=blocked)


# -- F4: a retraction only ever affects its own author's objects ----------------


def test_a_strangers_retraction_does_not_stop_us_wanting_the_document(
    store: ObjectStore, alice: Identity
) -> None:
    target = doc(alice, "Well maintenance")
    take(store, retraction(MALLORY, target.id))  # arrives first, in good faith
    declined = Declined(store, Policy())
    assert intake.wanted(store, [target.id], declined) == [target.id]
    report = take(store, target)
    assert report.accepted == [target.id] and store.has(target.id)
    assert not store.is_withdrawn(target.id)


def test_a_strangers_retraction_of_a_held_document_is_declined_and_removes_nothing(
    store: ObjectStore, alice: Identity
) -> None:
    target = doc(alice, "Seed bank")
    take(store, target)
    report = take(store, retraction(MALLORY, target.id))
    assert report.accepted == [] and report.refused == []
    assert "another author" in report.declined[0].reason
    assert store.has(target.id) and not store.is_withdrawn(target.id)


def test_the_authors_own_retraction_still_withdraws_for_good(
    store: ObjectStore, alice: Identity
) -> None:
    target = doc(alice, "Wrong timetable")
    take(store, retraction(alice, target.id))  # before the document: not yet confirmed
    assert intake.wanted(store, [target.id], Declined(store, Policy())) == [target.id]
    report = take(store, target)
    assert report.accepted == [] and "retracted" in report.declined[0].reason
    assert store.is_withdrawn(target.id) and not store.has(target.id)
    assert intake.wanted(store, [target.id], Declined(store, Policy())) == []


# -- F5: a record by one key cannot take over another key's address -------------


def record(author: Identity, addresses: tuple[str, ...], at: int) -> SignedObject:
    return sign(PeerRecord(author=author.public_key, created_at=at, addresses=addresses,
                           name=author.public_key.hex()[:8], mirror=True), author)


def test_a_record_naming_another_peers_address_neither_rebinds_nor_removes_it(
    bob: Identity,
) -> None:
    table = PeerTable()
    table.learn(record(bob, ("http://10.0.0.2:7400",), NOW - 100), NOW)
    assert table.learn(record(MALLORY, ("http://10.0.0.2:7400",), NOW - 50), NOW) == []
    peer = table.get("http://10.0.0.2:7400")
    assert peer is not None and peer.key == bob.public_key.hex()
    table.learn(record(MALLORY, ("http://10.6.6.6:7400",), NOW - 10), NOW)
    assert table.get("http://10.0.0.2:7400") is not None  # still there, still bob's
    assert table.get("http://10.0.0.2:7400").key == bob.public_key.hex()  # type: ignore[union-attr]


# -- F3: one author cannot fill the store with profiles or peer records ---------


def test_only_the_newest_profile_and_peer_record_of_an_author_are_kept(
    store: ObjectStore,
) -> None:
    profiles = [sign(Profile(author=MALLORY.public_key, created_at=NOW - 500 + i, name=f"m{i}"),
                     MALLORY) for i in range(200)]
    order = profiles[100:] + profiles[:100][::-1]  # newer ones first, then older
    report = take(store, *order)
    assert store.count("profile") == 1 and store.display_name(MALLORY.public_key) == "m199"
    assert len(report.accepted) == 100 and len(report.declined) == 100
    records = [record(MALLORY, (f"http://10.1.0.{i}:7400",), NOW - 300 + i) for i in range(50)]
    take(store, *records)
    assert store.count("peer") == 1


# -- F8: block is retroactive and reversible ------------------------------------


@pytest.fixture
def api(tmp_path: Path) -> LocalApi:
    commons = Commons.init(HomePaths(tmp_path / "home"), clock=lambda: NOW, name="me",
                           embedder=embedder_for_tests(), vectors=memory_vectors)
    yield LocalApi(commons)  # type: ignore[misc]
    commons.close()


def test_blocking_hides_an_authors_documents_and_unblocking_brings_them_back(
    api: LocalApi, alice: Identity
) -> None:
    store = api.commons.store
    spam = doc(MALLORY, "Cheap watches cheap watches")
    take(store, doc(alice, "Rain water tanks"), spam)
    assert any(d["title"] == spam.content.title for d in api.documents(author=None, tag=None))
    api.block(MALLORY.public_key.hex(), "spam")
    assert [b["reason"] for b in api.blocked()] == ["spam"]
    titles = {d["title"] for d in api.documents(author=None, tag=None)}
    assert "Rain water tanks" in titles and spam.content.title not in titles  # type: ignore[union-attr]
    with pytest.raises(NotFound, match="blocked"):
        api.show(spam.id.hex())
    answer = api.ask("cheap watches")
    assert all(c["author"] != MALLORY.public_key.hex() for c in answer["citations"])
    assert store.raw_objects([spam.id], skip_authors=api.commons.hidden_authors()) == []
    later = doc(MALLORY, "More watches", at=NOW - 1)
    report = take(store, later, blocked=store.blocked_keys())
    assert report.declined[0].reason == intake.BLOCKED_REASON and not store.has(later.id)
    api.unblock(MALLORY.public_key.hex())
    assert api.blocked() == []
    assert spam.content.title in {  # type: ignore[union-attr]
        d["title"] for d in api.documents(author=None, tag=None)}
    with pytest.raises(NotFound, match="not blocked"):
        api.unblock(MALLORY.public_key.hex())


# -- F11: the local API checks argument types before running anything ----------


@pytest.mark.parametrize(
    ("method", "kwargs", "says"),
    [
        ("documents", {"author": 5, "tag": None}, "'author' must be"),
        ("show", {"prefix": ["a"]}, "'prefix' must be str"),
        ("ask", {"question": "why", "k": "eight"}, "'k' must be int"),
        ("ask", {"question": "why", "tags": "maths"}, "'tags' must be"),
        ("add", {"extracted": {"title": 1, "body": "b", "media_type": "text/plain"},
                 "title": None, "tags": [], "licence": "x", "replaces": None}, "'extracted'"),
        ("retract", {"prefix": "abcdef12", "reason": 3}, "'reason'"),
        ("block", {"author": True, "reason": None}, "'author' must be str"),
    ],
)
def test_wrong_argument_types_are_the_callers_fault(
    api: LocalApi, method: str, kwargs: dict[str, object], says: str
) -> None:
    with pytest.raises(BadArguments, match=says):
        bind_arguments(method, getattr(api, method), kwargs)


def test_right_argument_types_pass(api: LocalApi) -> None:
    kwargs = bind_arguments("add", api.add, {
        "extracted": {"title": "t", "body": "b", "media_type": "text/plain"},
        "title": None, "tags": ["a"], "licence": "x", "replaces": None})
    assert isinstance(kwargs["extracted"], Extracted)
    bind_arguments("ask", api.ask, {"question": "why", "k": 3, "tags": ["maths"]})
