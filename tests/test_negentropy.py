"""Range-based set reconciliation (Negentropy protocol V1): wire format and convergence."""

from __future__ import annotations

import contextlib
import hashlib
import random
from dataclasses import dataclass, field
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.protocol.errors import LocalProtocolError, RemoteProtocolError
from sync.protocol.negentropy import Reconciler, SortedItems
from sync.protocol.wire import (
    INFINITY,
    Bound,
    FingerprintRange,
    IdListRange,
    SkipRange,
    decode_message,
    encode_message,
    encode_varint,
)

Item = tuple[int, bytes]


def sha16(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:16]


def ident(n: int) -> bytes:
    return n.to_bytes(32, "big")


@dataclass
class Exchange:
    """What passed over an in-memory link between a client and a server."""

    round_trips: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    frames_up: list[bytes] = field(default_factory=list)
    frames_down: list[bytes] = field(default_factory=list)
    have: list[bytes] = field(default_factory=list)
    need: list[bytes] = field(default_factory=list)


def sync(
    client_items: list[Item], server_items: list[Item], limit: int = 0, max_rounds: int = 5_000
) -> Exchange:
    client = Reconciler(SortedItems(client_items), frame_size_limit=limit)
    server = Reconciler(SortedItems(server_items), frame_size_limit=limit)
    ex = Exchange()
    message: bytes | None = client.initiate()
    while message is not None:
        assert ex.round_trips < max_rounds, "reconciliation does not converge"
        ex.frames_up.append(message)
        ex.bytes_up += len(message)
        reply = server.respond(message)
        ex.frames_down.append(reply)
        ex.bytes_down += len(reply)
        ex.round_trips += 1
        message, have, need = client.reconcile(reply)
        ex.have += have
        ex.need += need
    assert client.done
    return ex


def normalized(msg: bytes) -> list[tuple[object, ...]]:
    """A message's ranges with bounds compared as the spec does (zero-padded)."""
    return [
        (type(r).__name__, r.upper.key, getattr(r, "fingerprint", None), getattr(r, "ids", None))
        for r in decode_message(msg)
    ]


def assert_exact(ex: Exchange, client_items: list[Item], server_items: list[Item]) -> None:
    mine = {i for _, i in client_items}
    theirs = {i for _, i in server_items}
    assert len(ex.have) == len(set(ex.have)), "an id was reported twice"
    assert len(ex.need) == len(set(ex.need)), "an id was reported twice"
    assert set(ex.have) == mine - theirs
    assert set(ex.need) == theirs - mine


# --- Wire format, checked against bytes worked out by hand from the spec ---


@pytest.mark.parametrize(
    ("n", "encoded"),
    [
        (0, "00"),
        (1, "01"),
        (127, "7f"),
        (128, "8100"),
        (255, "817f"),
        (300, "822c"),
        (16383, "ff7f"),
        (16384, "818000"),
        (2**64 - 1, "81ffffffffffffffff7f"),
    ],
)
def test_varint_is_base128_most_significant_digit_first(n: int, encoded: str) -> None:
    assert encode_varint(n).hex() == encoded


def test_fingerprint_is_sha256_of_little_endian_sum_and_count() -> None:
    items = SortedItems([(1, b"\x01" + bytes(31)), (2, b"\x02" + bytes(31))])
    # 1 + 2 = 3 in the lowest (first, little-endian) byte, then varint(2).
    assert items.fingerprint().hex() == "055ec405febfad804c1c5638d7369361"
    assert items.fingerprint() == sha16(b"\x03" + bytes(31) + b"\x02")


def test_fingerprint_sum_carries_and_wraps_mod_2_256() -> None:
    # (2**256 - 1) + 1 wraps to 0.
    items = SortedItems([(1, b"\xff" * 32), (1, b"\x01" + bytes(31))])
    assert items.fingerprint().hex() == "58cc2f44d3a27866874701fbad573da9"
    # 0xff + 0x01 in byte 0 carries into byte 1: little-endian, not big-endian.
    carry = SortedItems([(1, b"\xff" + bytes(31)), (2, b"\x01" + bytes(31))])
    assert carry.fingerprint() == sha16(b"\x00\x01" + bytes(30) + b"\x02")


def test_fingerprint_of_empty_range() -> None:
    assert SortedItems([]).fingerprint().hex() == "7f9c9e31ac8256ca2f258583df262dbc"


def test_initial_message_for_small_set_is_one_id_list_to_infinity() -> None:
    a, b = b"\xaa" * 32, b"\xbb" * 32
    msg = Reconciler(SortedItems([(20, a), (10, b)])).initiate()
    # version | bound: ts 0 (infinity), prefix length 0 | mode 2 | count 2 | ids by timestamp
    assert msg == bytes.fromhex("6100000202") + b + a


def test_initial_message_for_empty_set() -> None:
    assert Reconciler(SortedItems([])).initiate() == bytes.fromhex("6100000200")


def test_initial_message_for_32_items_splits_into_16_fingerprints() -> None:
    items = [(100 + i, bytes([i]) + bytes(31)) for i in range(32)]
    msg = Reconciler(SortedItems(items)).initiate()
    # Bucket k holds items 2k and 2k+1. The bound after it is the timestamp of
    # item 2k+2 (timestamps differ, so no id prefix), delta-encoded plus one:
    # first 102 - 0 + 1 = 0x67, then 2 + 1 = 3 each; the last is infinity (0).
    bounds = [b"\x67\x00"] + [b"\x03\x00"] * 14 + [b"\x00\x00"]
    expected = b"\x61"
    for k in range(16):
        id_sum = bytes([2 * k + 2 * k + 1]) + bytes(31)
        expected += bounds[k] + b"\x01" + sha16(id_sum + b"\x02")
    assert msg == expected


def test_bounds_between_equal_timestamps_use_shortest_id_prefix() -> None:
    # All at timestamp 7; ids share their first byte and differ in the second.
    items = [(7, bytes([0x10, 8 * i]) + bytes(30)) for i in range(32)]
    msg = Reconciler(SortedItems(items)).initiate()
    expected = b"\x61"
    for k in range(16):
        if k == 0:
            bound = bytes([0x08, 0x02, 0x10, 8 * (2 * k + 2)])  # ts 7 -> 8; 2-byte prefix
        elif k < 15:
            bound = bytes([0x01, 0x02, 0x10, 8 * (2 * k + 2)])  # same ts: delta 0 -> 1
        else:
            bound = b"\x00\x00"
        id_sum = 0x10 + 0x10 + (8 * (2 * k) + 8 * (2 * k + 1)) * 256
        expected += bound + b"\x01" + sha16(id_sum.to_bytes(32, "little") + b"\x02")
    assert msg == expected


def test_decode_message_by_hand() -> None:
    fp = bytes(range(16))
    id_ = b"\x42" * 32
    raw = (
        bytes.fromhex("61")
        + bytes.fromhex("06 00 00")  # ts 0 + (6 - 1) = 5, no prefix, Skip
        + bytes.fromhex("04 01 ab 01")  # ts 5 + (4 - 1) = 8, prefix ab, Fingerprint
        + fp
        + bytes.fromhex("00 00 02 01")  # infinity, no prefix, IdList of 1
        + id_
    )
    ranges = decode_message(raw)
    assert ranges == (
        SkipRange(Bound(5)),
        FingerprintRange(Bound(8, b"\xab"), fp),
        IdListRange(INFINITY, (id_,)),
    )
    assert encode_message(ranges) == raw


def test_timestamps_after_infinity_stay_infinite() -> None:
    ranges = decode_message(bytes.fromhex("61 0000 000500 00"))
    assert [r.upper for r in ranges] == [INFINITY, INFINITY]


def test_zero_padded_bound_prefixes_mean_the_same() -> None:
    # Some peers echo bounds with the id prefix padded to 32 bytes.
    rng = random.Random(7)
    items = [(rng.randrange(3), rng.randbytes(32)) for _ in range(600)]
    client_msg = Reconciler(SortedItems(items[:500])).initiate()
    padded = [
        FingerprintRange(
            Bound(r.upper.timestamp, r.upper.id_prefix.ljust(32, b"\0")), r.fingerprint
        )
        if isinstance(r, FingerprintRange) and r.upper != INFINITY
        else r
        for r in decode_message(client_msg)
    ]
    padded_msg = encode_message(padded)
    assert len(padded_msg) > len(client_msg)
    server = Reconciler(SortedItems(items[100:]))
    assert normalized(server.respond(padded_msg)) == normalized(server.respond(client_msg))


# --- Convergence ---


def test_both_empty() -> None:
    ex = sync([], [])
    assert ex.round_trips == 1
    assert ex.frames_up == [bytes.fromhex("6100000200")]
    assert ex.frames_down == [bytes.fromhex("6100000200")]
    assert ex.have == [] and ex.need == []


@pytest.mark.parametrize("n", [1, 31, 32, 1000])
def test_identical_sets_take_one_round_trip(n: int) -> None:
    items = [(i // 3, ident(i)) for i in range(n)]
    ex = sync(items, items)
    assert ex.round_trips == 1
    assert ex.have == [] and ex.need == []
    if n >= 32:  # every fingerprint matches: the server has nothing to say
        assert ex.frames_down == [b"\x61"]


@pytest.mark.parametrize("n", [1, 31, 32, 5000])
def test_client_empty(n: int) -> None:
    server_items = [(i, ident(i)) for i in range(n)]
    ex = sync([], server_items)
    assert ex.round_trips == 1
    assert ex.need == [ident(i) for i in range(n)]
    assert ex.have == []


@pytest.mark.parametrize("n", [1, 31, 32, 5000])
def test_server_empty(n: int) -> None:
    client_items = [(i, ident(i)) for i in range(n)]
    ex = sync(client_items, [])
    assert_exact(ex, client_items, [])
    assert len(ex.have) == n
    assert ex.round_trips <= 2


def test_one_difference_each_way() -> None:
    common = [(i, ident(i)) for i in range(40)]
    ex = sync(common + [(100, ident(100))], common + [(101, ident(101))])
    assert ex.have == [ident(100)]
    assert ex.need == [ident(101)]


def test_ids_are_reported_once_per_session() -> None:
    # A capped reply can make the client revisit ranges it already settled;
    # feeding it the same reply twice is the extreme case.
    client_items = [(i, ident(i)) for i in range(100)]
    server_ids = [ident(i) for i in range(1, 50)] + [ident(1000)]
    reply = encode_message(
        [
            IdListRange(Bound(50), tuple(server_ids)),
            FingerprintRange(INFINITY, b"\x00" * 16),  # mismatch: keeps the client going
        ]
    )
    client = Reconciler(SortedItems(client_items))
    client.initiate()
    first = client.reconcile(reply)
    assert first.next_message is not None
    assert first.have_ids == [ident(0)]
    assert first.need_ids == [ident(1000)]
    second = client.reconcile(reply)
    assert second.have_ids == [] and second.need_ids == []
    assert second.next_message == first.next_message


def test_same_timestamps_converge() -> None:
    rng = random.Random(3)
    universe = [(5, rng.randbytes(32)) for _ in range(3000)]
    a = universe[:2900]
    b = universe[100:]
    assert_exact(sync(a, b), a, b)


id_bytes = st.tuples(st.integers(0, 2), st.integers(0, 2), st.binary(min_size=30, max_size=30)).map(
    lambda t: bytes([t[0], t[1]]) + t[2]
)
universes = st.lists(
    st.tuples(st.integers(0, 2**64 - 2) | st.integers(0, 4), id_bytes),
    unique_by=lambda item: item[1],
    max_size=400,
)


@given(
    universe=universes,
    data=st.data(),
    limit=st.sampled_from([0, 4096]),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_sets_converge_to_exact_differences(
    universe: list[Item], data: st.DataObject, limit: int
) -> None:
    sides = data.draw(
        st.lists(st.sampled_from("acs"), min_size=len(universe), max_size=len(universe))
    )
    client = [item for item, side in zip(universe, sides, strict=True) if side in "ac"]
    server = [item for item, side in zip(universe, sides, strict=True) if side in "as"]
    ex = sync(client, server, limit=limit)
    assert_exact(ex, client, server)
    if limit:
        assert max(map(len, ex.frames_up + ex.frames_down)) <= limit


# --- 100k items ---


@cache
def big_universe() -> list[Item]:
    rng = random.Random(20240601)
    start = 1_700_000_000
    return [(start + rng.randrange(10_000_000), rng.randbytes(32)) for _ in range(102_000)]


def split_sets(d: int) -> tuple[list[Item], list[Item]]:
    universe = big_universe()
    common = universe[: 100_000 - d // 2]
    client_only = universe[100_000 : 100_000 + d // 2]
    server_only = universe[101_000 : 101_000 + d - d // 2]
    return common + client_only, common + server_only


@pytest.mark.parametrize(
    ("d", "max_round_trips", "max_bytes"),
    [(1, 3, 4_000), (10, 3, 25_000), (100, 3, 200_000), (1000, 3, 1_500_000)],
)
def test_100k_items_few_differences(d: int, max_round_trips: int, max_bytes: int) -> None:
    client, server = split_sets(d)
    ex = sync(client, server, limit=0)
    assert_exact(ex, client, server)
    assert len(ex.have) + len(ex.need) == d
    assert ex.round_trips <= max_round_trips
    # Far below sending every id (3.2 MB).
    assert ex.bytes_up + ex.bytes_down <= max_bytes


@pytest.mark.parametrize("limit", [4096, 60_000])
def test_100k_items_1000_differences_within_frame_limit(limit: int) -> None:
    client, server = split_sets(1000)
    ex = sync(client, server, limit=limit)
    assert_exact(ex, client, server)
    assert max(map(len, ex.frames_up + ex.frames_down)) <= limit
    assert ex.round_trips > 1  # the limit really did force extra rounds


def test_frame_limit_splits_a_long_id_list() -> None:
    # The client has nothing, so it asks for everything with one empty id
    # list; 10k ids (320 kB) must come back in frames of at most 4096 bytes.
    server_items = [(i, ident(i)) for i in range(10_000)]
    ex = sync([], server_items, limit=4096)
    assert ex.need == [ident(i) for i in range(10_000)]
    assert max(map(len, ex.frames_up + ex.frames_down)) <= 4096
    assert ex.round_trips >= 10_000 * 32 // 4096
    # A capped reply ends with one fingerprint covering the rest.
    last = decode_message(ex.frames_down[0])[-1]
    assert isinstance(last, FingerprintRange) and last.upper == INFINITY


# --- Hostile input: only RemoteProtocolError, ever ---


@cache
def sample_messages() -> list[bytes]:
    rng = random.Random(11)
    universe = [(rng.randrange(50), rng.randbytes(32)) for _ in range(700)]
    out = []
    for n in (0, 5, 40, 700):
        out.append(Reconciler(SortedItems(universe[:n])).initiate())
    server = Reconciler(SortedItems(universe[30:]))
    for msg in list(out):
        out.append(server.respond(msg))
    return out


FUZZ_ITEMS = SortedItems([(i // 4, ident(i)) for i in range(64)])


def feed_server(msg: bytes) -> None:
    # Anything but RemoteProtocolError escapes and fails the test.
    with contextlib.suppress(RemoteProtocolError):
        Reconciler(FUZZ_ITEMS).respond(msg)


def feed_client(msg: bytes) -> None:
    client = Reconciler(FUZZ_ITEMS)
    client.initiate()
    with contextlib.suppress(RemoteProtocolError):
        client.reconcile(msg)


@given(st.binary(max_size=300))
@settings(max_examples=400, deadline=None)
def test_random_bytes_raise_only_remote_protocol_error(msg: bytes) -> None:
    feed_server(msg)
    feed_client(msg)
    feed_server(b"\x61" + msg)
    feed_client(b"\x61" + msg)


mutation = st.tuples(
    st.sampled_from(["flip", "set", "insert", "delete", "cut"]),
    st.integers(0, 10**6),
    st.integers(0, 255),
)


@given(st.integers(0, 7), st.lists(mutation, min_size=1, max_size=6))
@settings(max_examples=400, deadline=None)
def test_mutated_messages_raise_only_remote_protocol_error(
    which: int, mutations: list[tuple[str, int, int]]
) -> None:
    msg = bytearray(sample_messages()[which])
    for op, pos, value in mutations:
        pos %= len(msg) + 1
        if op == "flip" and pos < len(msg):
            msg[pos] ^= 1 << (value % 8)
        elif op == "set" and pos < len(msg):
            msg[pos] = value
        elif op == "insert":
            msg.insert(pos, value)
        elif op == "delete" and pos < len(msg):
            del msg[pos]
        elif op == "cut":
            del msg[pos:]
    feed_server(bytes(msg))
    feed_client(bytes(msg))


@pytest.mark.parametrize(
    "msg",
    [
        b"",
        b"\x61\x01",  # bound cut short
        b"\x61\x00\x00",  # no mode
        b"\x61\x00\x00\x03",  # unknown mode
        b"\x61\x00\x21" + bytes(33) + b"\x00",  # prefix longer than an id
        b"\x61\x00\x00\x01" + bytes(15),  # fingerprint cut short
        b"\x61\x00\x00\x02\xff\xff\xff\xff\xff\xff\xff\xff\x7f",  # id list claims 2**63 ids
        b"\x61" + b"\xff" * 10 + b"\x7f" + b"\x00\x00",  # timestamp varint over 64 bits
        b"\x00",  # not a version byte
    ],
)
def test_malformed_messages(msg: bytes) -> None:
    server = Reconciler(SortedItems([]))
    with pytest.raises(RemoteProtocolError):
        server.respond(msg)
    client = Reconciler(SortedItems([]))
    client.initiate()
    with pytest.raises(RemoteProtocolError):
        client.reconcile(msg)


def test_backwards_bounds_rejected() -> None:
    # ts 4 with prefix ff, then ts 4 again with the shorter (smaller) prefix 00.
    msg = bytes.fromhex("61 05 01 ff 00 01 01 00 00")
    with pytest.raises(RemoteProtocolError, match="backwards"):
        Reconciler(SortedItems([])).respond(msg)


def test_unknown_future_version_gets_our_version_back() -> None:
    server = Reconciler(SortedItems([(1, ident(1))]))
    assert server.respond(b"\x62\x00\x00\x02\x00") == b"\x61"


def test_client_rejects_server_on_other_version() -> None:
    client = Reconciler(SortedItems([]))
    client.initiate()
    with pytest.raises(RemoteProtocolError, match="V1"):
        client.reconcile(b"\x62")


# --- API misuse: LocalProtocolError ---


def test_frame_limit_below_spec_minimum() -> None:
    with pytest.raises(LocalProtocolError):
        Reconciler(SortedItems([]), frame_size_limit=4095)
    Reconciler(SortedItems([]), frame_size_limit=4096)
    Reconciler(SortedItems([]), frame_size_limit=0)


def test_call_order_is_enforced() -> None:
    client = Reconciler(SortedItems([]))
    with pytest.raises(LocalProtocolError):
        client.reconcile(b"\x61")
    client.initiate()
    with pytest.raises(LocalProtocolError):
        client.initiate()
    with pytest.raises(LocalProtocolError):
        client.respond(b"\x61")
    assert client.reconcile(b"\x61").next_message is None
    with pytest.raises(LocalProtocolError):
        client.reconcile(b"\x61")
    server = Reconciler(SortedItems([]))
    server.respond(b"\x61")
    with pytest.raises(LocalProtocolError):
        server.initiate()


@pytest.mark.parametrize(
    "items",
    [
        [(1, b"\x00" * 31)],
        [(1, "00" * 32)],
        [(2**64 - 1, bytes(32))],
        [(-1, bytes(32))],
        [(1, bytes(32)), (2, bytes(32))],
    ],
)
def test_bad_items_rejected(items: list[Item]) -> None:
    with pytest.raises(LocalProtocolError):
        SortedItems(items)


def test_sorted_items_order() -> None:
    items = SortedItems([(2, b"\x01" * 32), (1, b"\x03" * 32), (1, b"\x02" * 32)])
    assert list(items) == [(1, b"\x02" * 32), (1, b"\x03" * 32), (2, b"\x01" * 32)]
    assert len(items) == 3
