"""Mirror policies: the file format, the accept decision, and rate limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commons.model.identity import Identity
from commons.model.objects import (
    MAX_OBJECT_BYTES,
    Document,
    Profile,
    Retraction,
    SignedObject,
    sign,
)
from sync.gossip.policy import Declined, Policy, PolicyError, RateLimit, RateLimiter

NOW = 1_800_000_000


def doc(who: Identity, tags: tuple[str, ...] = ()) -> SignedObject:
    return sign(Document(author=who.public_key, created_at=NOW, title="t", body="b", tags=tags),
                who)


def test_the_policy_in_the_mirror_guide_loads(tmp_path: Path) -> None:
    """seeds/06-community-mirror.md shows this file; it must work as written."""
    guide = Path(__file__).parent.parent / "seeds" / "06-community-mirror.md"
    text = guide.read_text()
    block = text.split("```json\n", 1)[1].split("```", 1)[0]
    block = block.replace("<public key of the head teacher>", "ab" * 32)
    block = block.replace("<public key of a spammer>", "cd" * 32)
    path = tmp_path / "policy.json"
    path.write_text(block)
    policy = Policy.load(path)
    assert not policy.accept_all and "maths" in policy.tags
    assert policy.authors == {bytes.fromhex("ab" * 32)}
    assert policy.block == {bytes.fromhex("cd" * 32)}
    assert policy.request_rate is not None


def test_scoped_policy_keeps_listed_authors_and_tags(alice: Identity, bob: Identity) -> None:
    policy = Policy.from_json({"accept": {"authors": [alice.public_key.hex()], "tags": ["maths"]}})
    assert policy.decide(doc(alice), 100) is None
    assert policy.decide(doc(bob, ("maths", "x")), 100) is None
    assert "neither" in (policy.decide(doc(bob, ("art",)), 100) or "")
    # Small kinds that keep the commons working are kept from anyone.
    profile = sign(Profile(author=bob.public_key, created_at=NOW, name="bob"), bob)
    retraction = sign(Retraction(author=bob.public_key, created_at=NOW, target=b"\1" * 32), bob)
    assert policy.decide(profile, 50) is None and policy.decide(retraction, 50) is None


def test_block_list_and_size_limit(alice: Identity, bob: Identity) -> None:
    policy = Policy.from_json({"block": [bob.public_key.hex()], "max_object_bytes": 1000})
    assert "block list" in (policy.decide(doc(bob), 10) or "")
    assert "1000" in (policy.decide(doc(alice), 1001) or "")
    assert policy.decide(doc(alice), 1000) is None
    assert Policy().decide(doc(bob), MAX_OBJECT_BYTES) is None


def test_blocked_peers_match_by_address_or_url() -> None:
    policy = Policy.from_json({"block_peers": ["10.0.0.7", "http://spam.example:7400/"]})
    assert policy.blocks_peer("10.0.0.7")
    assert policy.blocks_peer("http://10.0.0.7:7400")
    assert policy.blocks_peer("http://spam.example:7400")
    assert not policy.blocks_peer("10.0.0.8")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "JSON object"),
        ({"acept": "all"}, "unknown key 'acept'"),
        ({"accept": "some"}, '"accept" must be'),
        ({"accept": {"authors": ["nope"]}}, "not a public key"),
        ({"accept": {"tags": "maths"}}, "list of tags"),
        ({"max_object_bytes": 5_000_000}, "above the protocol limit"),
        ({"max_object_bytes": "big"}, "positive integer"),
        ({"rate_limit_per_peer": "fast"}, "must look like"),
        ({"rate_limit_per_peer": "60/fortnight"}, "unknown period"),
        ({"byte_limit_per_peer": "5 parsecs/hour"}, "unknown size unit"),
        ({"rate_limit_per_peer": "0/minute"}, "at least 1"),
        ({"block": "ab"}, "list of public keys"),
    ],
)
def test_bad_policies_say_what_is_wrong(value: object, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        Policy.from_json(value, source="p.json")


def test_unreadable_files_say_where(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        Policy.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"accept": "all",}')
    with pytest.raises(PolicyError, match="line 1"):
        Policy.load(bad)


def test_rate_texts_parse() -> None:
    assert RateLimit.parse("60/minute", bytes_=False, where="x") == RateLimit(60, 60)
    assert RateLimit.parse("2 requests / s", bytes_=False, where="x") == RateLimit(2, 1)
    assert RateLimit.parse("200MB/hour", bytes_=True, where="x") == RateLimit(200_000_000, 3600)
    assert RateLimit.parse("1.5 MiB/days", bytes_=True, where="x") == RateLimit(1572864, 86400)
    described = Policy.from_json({"rate_limit_per_peer": "60/minute"}).describe()
    assert described["rate_limit_per_peer"] == "60/minute"


def test_rate_limiter_is_a_token_bucket_per_peer() -> None:
    limiter = RateLimiter(RateLimit(3, 60))
    assert [limiter.take("a", 1, 0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("a", 1, 0)
    assert wait == pytest.approx(20.0)
    assert limiter.take("b", 1, 0) == 0.0  # another peer has its own bucket
    assert limiter.take("a", 1, 20) == 0.0  # one token back after 20 s
    assert RateLimiter(None).take("a", 10**9, 0) == 0.0


def test_a_request_larger_than_the_bucket_passes_when_it_is_full() -> None:
    limiter = RateLimiter(RateLimit(100, 10))
    assert limiter.take("a", 500, 0) == 0.0
    assert limiter.take("a", 1, 0) > 0


def test_declined_ids_are_remembered_per_policy(tmp_path: Path) -> None:
    from commons.storage.store import ObjectStore

    store = ObjectStore(tmp_path / "db")
    narrow = Policy.from_json({"accept": {"tags": ["maths"]}})
    declined = Declined(store, narrow)
    declined.add(b"\1" * 32, "not maths", NOW)
    assert b"\1" * 32 in Declined(store, narrow)
    # A changed policy judges everything again.
    assert b"\1" * 32 not in Declined(store, Policy())
    assert len(Declined(store, narrow)) == 0
    store.close()


def test_policy_file_round_trip_through_json(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"accept": "all", "byte_limit_per_peer": "1GB/day"}))
    assert Policy.load(path).byte_rate == RateLimit(10**9, 86400)
