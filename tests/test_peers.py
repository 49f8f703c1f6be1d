"""The peer table's pure decisions, and its persistence in the home's SQLite."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from commons.model.identity import Identity
from commons.model.objects import PeerRecord, sign
from commons.storage.store import ObjectStore
from sync.gossip.peer_rows import BACKOFF_CAP
from sync.gossip.peers import (
    PeerTable,
    PeerUrlError,
    backoff_delay,
    load_rows,
    normalise_url,
    save_rows,
)

NOW = 1_800_000_000


def record(who: Identity, *addresses: str, at: int = NOW, mirror: bool = False) -> object:
    content = PeerRecord(author=who.public_key, created_at=at, addresses=addresses, name="p",
                         mirror=mirror)
    return sign(content, who)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://a.example:7400", "http://a.example:7400"),
        ("http://A.example:7400/", "http://a.example:7400"),
        ("a.example:7400", "http://a.example:7400"),
        ("https://a.example", "https://a.example:443"),
        ("http://[::1]:7400", "http://[::1]:7400"),
        ("10.0.0.5:7400", "http://10.0.0.5:7400"),
        (" https://mirror.example/ ", "https://mirror.example:443"),
    ],
)
def test_urls_have_one_spelling(given: str, expected: str) -> None:
    assert normalise_url(given) == expected


@pytest.mark.parametrize(
    "bad",
    ["ftp://x:1", "http://", "http://x:99999", "http://x:1/path", "", "http://:7400", "host:port"],
)
def test_bad_urls_are_refused(bad: str) -> None:
    with pytest.raises(PeerUrlError):
        normalise_url(bad)


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, rng) for n in range(1, 6)]
    for n, d in enumerate(delays, start=1):
        assert 2 ** (n - 1) * 0.5 <= d <= 2 ** (n - 1)
    assert backoff_delay(40, rng) <= BACKOFF_CAP
    assert backoff_delay(0, rng) == 0.0


def test_failures_back_off_and_success_restores() -> None:
    table = PeerTable()
    table.add("http://a:1", source="manual", now=NOW)
    rng = random.Random(3)
    delay = table.failure("http://a:1", NOW, rng)
    assert table.eligible(NOW) == []
    assert [p.url for p in table.eligible(NOW + delay)] == ["http://a:1"]
    table.failure("http://a:1", NOW, rng)
    peer = table.get("http://a:1")
    assert peer is not None and peer.failures == 2 and peer.health < 0.5
    table.success("http://a:1", NOW + 100, sent=2, received=5)
    peer = table.get("http://a:1")
    assert peer is not None
    assert (peer.failures, peer.last_seen, peer.sent, peer.received) == (0, NOW + 100, 2, 5)
    assert table.eligible(NOW + 100)


def test_faults_drop_a_peer_and_only_the_user_can_bring_it_back(alice: Identity) -> None:
    table = PeerTable(max_faults=3)
    table.add("http://a:1", source="bootstrap", now=NOW)
    assert [table.fault("http://a:1", NOW) for _ in range(3)] == [False, False, True]
    assert table.eligible(NOW) == [] and table.get("http://a:1").state == "dropped"  # type: ignore[union-attr]
    assert table.add("http://a:1", source="bootstrap", now=NOW) is None
    assert table.learn(record(alice, "http://a:1"), NOW) == []  # type: ignore[arg-type]
    peer = table.add("http://a:1", source="manual", now=NOW)
    assert peer is not None and peer.state == "active" and peer.faults == 0


def test_removed_peers_stay_removed_until_added_by_hand(alice: Identity) -> None:
    table = PeerTable()
    table.learn(record(alice, "http://a:1"), NOW)  # type: ignore[arg-type]
    assert table.remove("http://a:1/")
    assert not table.remove("http://a:1")
    assert table.learn(record(alice, "http://a:1", at=NOW + 1), NOW) == []  # type: ignore[arg-type]
    assert table.active() == []
    assert table.add("http://a:1", source="manual", now=NOW) is not None


def test_records_teach_peers_and_newer_records_supersede(alice: Identity, bob: Identity) -> None:
    table = PeerTable(own_key=bob.public_key)
    learnt = table.learn(record(alice, "http://old:1", mirror=True), NOW)  # type: ignore[arg-type]
    assert [(p.url, p.mirror, p.key) for p in learnt] == [
        ("http://old:1", True, alice.public_key.hex())
    ]
    table.learn(record(alice, "http://new:1", at=NOW + 5), NOW)  # type: ignore[arg-type]
    assert [p.url for p in table.all()] == ["http://new:1"]
    # An older record arriving late changes nothing.
    assert table.learn(record(alice, "http://old:1", at=NOW + 1), NOW) == []  # type: ignore[arg-type]
    # Our own record is not a peer.
    assert table.learn(record(bob, "http://me:1"), NOW) == []  # type: ignore[arg-type]


def test_own_urls_are_never_peers() -> None:
    table = PeerTable(own_urls=["http://127.0.0.1:7400"])
    assert table.add("127.0.0.1:7400", source="bootstrap", now=NOW) is None
    table.add("http://x:1", source="manual", now=NOW)
    table.set_own_urls(["http://x:1"])
    assert table.all() == []


def test_outbound_set_is_bounded_and_prefers_named_peers(alice: Identity) -> None:
    table = PeerTable(max_outbound=3)
    rng = random.Random(5)
    table.add("http://boot:1", source="bootstrap", now=NOW)
    for i in range(10):
        key = Identity(bytes([i + 100]) * 32)
        table.learn(record(key, f"http://r{i}:1"), NOW)  # type: ignore[arg-type]
    assert table.outbound(NOW, rng) == ["http://boot:1"]  # claimed addresses wait for proof
    for i in range(10):
        assert table.proven(f"http://r{i}:1", (bytes([i + 100]) * 32).hex(), NOW) is False
        key_hex = Identity(bytes([i + 100]) * 32).public_key.hex()
        assert table.proven(f"http://r{i}:1", key_hex, NOW)
    outbound = table.outbound(NOW, rng)
    assert len(outbound) == 3 and "http://boot:1" in outbound
    assert len(table.choose(NOW, rng, 2)) == 2
    assert all(p.url in outbound for p in table.choose(NOW, rng, 5))
    # A member that keeps failing gives its slot to another.
    for _ in range(3):
        table.failure("http://boot:1", NOW, rng)
    assert "http://boot:1" not in table.outbound(NOW, rng)
    assert len(table.outbound(NOW, rng)) == 3


def test_choice_favours_healthy_peers() -> None:
    table = PeerTable()
    table.add("http://good:1", source="manual", now=NOW)
    table.add("http://poor:1", source="manual", now=NOW)
    for _ in range(5):
        table.success("http://good:1", NOW)
    rng = random.Random(9)
    table.failure("http://poor:1", NOW - 100, rng)  # backed off in the past: eligible again
    picks = Counter(table.choose(NOW, rng, 1)[0].url for _ in range(400))
    assert picks["http://good:1"] > 2 * picks["http://poor:1"] > 0


def test_table_size_is_bounded_by_forgetting_learnt_peers() -> None:
    table = PeerTable(max_known=4)
    table.add("http://manual:1", source="manual", now=NOW)
    for i in range(10):
        key = Identity(bytes([i + 1]) * 32)
        table.learn(record(key, f"http://r{i}:1"), NOW)  # type: ignore[arg-type]
    urls = [p.url for p in table.all()]
    assert len(urls) == 4 and "http://manual:1" in urls


def test_rows_persist_in_the_store(store: ObjectStore) -> None:
    table = PeerTable(load_rows(store))
    table.add("http://a:1", source="manual", now=NOW)
    table.add("http://b:1", source="bootstrap", now=NOW)
    table.success("http://a:1", NOW, received=3)
    save_rows(store, *table.pending_rows())
    assert table.pending_rows() == ([], [])
    again = PeerTable(load_rows(store))
    assert again.all() == table.all()
    assert store.schema_version("peers") == 2
    again.set_own_urls(["http://b:1"])
    save_rows(store, *again.pending_rows())
    assert [p.url for p in load_rows(store)] == ["http://a:1"]


def test_unproven_addresses_are_candidates_never_members(alice: Identity) -> None:
    table = PeerTable(max_outbound=8, max_candidates=2)
    rng = random.Random(3)
    table.add("http://boot:1", source="bootstrap", now=NOW)
    for i in range(250):
        key = Identity((1000 + i).to_bytes(32, "big"))
        table.learn(sign(PeerRecord(author=key.public_key, created_at=NOW, addresses=(
            f"http://127.0.0.1:{2000 + i}",), name=f"m{i}", mirror=True), key), NOW)
    assert table.outbound(NOW, rng) == ["http://boot:1"]
    assert [p.url for p in table.choose(NOW, rng, 3)] == ["http://boot:1"]
    tried = table.candidates(NOW, rng, 2)
    assert len(tried) == 2 and all(p.candidate and not p.trusted for p in tried)
    # A failed try backs the address off: the next slots go to others.
    for peer in tried:
        table.failure(peer.url, NOW, rng)
    again = table.candidates(NOW, rng, 250)
    assert {p.url for p in tried}.isdisjoint(p.url for p in again)
    assert "http://boot:1" not in {p.url for p in again}


def test_a_proven_binding_is_never_rebound_or_removed_by_another_key(alice: Identity) -> None:
    table = PeerTable()
    mallory = Identity(bytes([66]) * 32)
    table.learn(record(alice, "http://b:1", at=NOW), NOW)
    assert table.proven("http://b:1", alice.public_key.hex(), NOW)
    table.learn(record(mallory, "http://b:1", at=NOW + 5), NOW)
    table.learn(record(mallory, "http://m:1", at=NOW + 6), NOW)  # "forget" b, says M
    b = table.get("http://b:1")
    assert b is not None and b.key == alice.public_key.hex() and b.proven_at == NOW
    assert table.kept_keys(NOW) == {alice.public_key}
    # Forgetting Mallory's expired record leaves Alice's proven address alone.
    assert table.forget_keys([mallory.public_key]) == 1
    assert table.get("http://b:1") is not None and table.get("http://m:1") is None


def test_a_named_address_gets_its_key_from_a_proof_not_a_record(alice: Identity) -> None:
    table = PeerTable()
    mallory = Identity(bytes([66]) * 32)
    table.add("http://boot:1", source="bootstrap", now=NOW)
    table.learn(record(mallory, "http://boot:1"), NOW)
    boot = table.get("http://boot:1")
    assert boot is not None and boot.key is None and boot.trusted
    assert table.proven("http://boot:1", alice.public_key.hex(), NOW + 1)
    boot = table.get("http://boot:1")
    assert boot is not None and boot.key == alice.public_key.hex()
    assert alice.public_key in table.kept_keys(NOW + 10 ** 8)  # named: kept however silent


def test_a_signed_request_from_a_proven_key_ends_its_back_off(alice: Identity) -> None:
    table = PeerTable()
    rng = random.Random(4)
    table.learn(record(alice, "http://a:1"), NOW)  # type: ignore[arg-type]
    table.learn(record(Identity(bytes([9]) * 32), "http://x:1"), NOW)  # type: ignore[arg-type]
    assert table.proven("http://a:1", alice.public_key.hex(), NOW)
    for url in ("http://a:1", "http://x:1"):
        table.failure(url, NOW, rng)
        table.failure(url, NOW, rng)
    table.heard_from(alice.public_key.hex())
    a, x = table.get("http://a:1"), table.get("http://x:1")
    assert a is not None and a.failures == 0 and a.next_attempt == 0.0
    assert x is not None and x.failures == 2  # unproven: a request proves nothing of it
    table.heard_from(Identity(bytes([9]) * 32).public_key.hex())
    assert table.get("http://x:1").failures == 2  # type: ignore[union-attr]
