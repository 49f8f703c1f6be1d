"""Wire messages: constructors validate, and a peer's garbage only raises RemoteProtocolError."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.protocol.errors import LocalProtocolError, RemoteProtocolError
from sync.protocol.messages import (
    MAX_IDS,
    MAX_LINE_BYTES,
    FetchRequest,
    Offer,
    OfferReply,
    PushReply,
    Rejected,
    batches,
    encode_lines,
    split_lines,
)

IDS = tuple(bytes([i]) * 32 for i in range(5))


def test_id_lists_round_trip() -> None:
    for cls in (FetchRequest, Offer):
        message = cls(IDS)
        assert cls.from_wire(message.to_wire()) == message
    reply = OfferReply(IDS[:2])
    assert OfferReply.from_wire(reply.to_wire(), offered=IDS) == reply


def test_push_reply_round_trips() -> None:
    reply = PushReply(3, 1, (Rejected("ab" * 32, "policy"),), (Rejected("", "bad json"),))
    assert PushReply.from_wire(reply.to_wire()) == reply


@pytest.mark.parametrize(
    "ids",
    [
        (b"short",),
        (IDS[0], IDS[0]),
        tuple(i.to_bytes(32, "big") for i in range(MAX_IDS + 1)),
    ],
)
def test_our_own_bad_messages_raise_the_local_error(ids: tuple[bytes, ...]) -> None:
    with pytest.raises(LocalProtocolError):
        FetchRequest(ids)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b"{}",
        b'{"ids": "abc"}',
        b'{"ids": ["zz"]}',
        b'{"ids": ["' + b"g" * 64 + b'"]}',
        json.dumps({"ids": [IDS[0].hex(), IDS[0].hex()]}).encode(),
        json.dumps({"ids": [i.to_bytes(32, "big").hex() for i in range(MAX_IDS + 1)]}).encode(),
        b"[" * 100_000,
        b"\xff\xfe",
    ],
)
def test_malformed_id_lists_from_a_peer_raise_the_remote_error(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        FetchRequest.from_wire(body)


def test_an_offer_reply_may_not_want_what_was_not_offered() -> None:
    with pytest.raises(RemoteProtocolError, match="not offered"):
        OfferReply.from_wire(OfferReply((IDS[4],)).to_wire(), offered=IDS[:2])


@given(st.binary(max_size=300))
def test_any_bytes_from_a_peer_raise_only_the_remote_error(data: bytes) -> None:
    for parse in (
        FetchRequest.from_wire,
        PushReply.from_wire,
        lambda d: OfferReply.from_wire(d, offered=IDS),
        lambda d: list(split_lines(d, max_lines=3)),
    ):
        with contextlib.suppress(RemoteProtocolError):
            parse(data)


_VALUES = st.one_of(
    st.integers(), st.text(max_size=5), st.none(),
    st.lists(
        st.dictionaries(st.sampled_from(["id", "reason"]), st.integers() | st.text(max_size=3)),
        max_size=2,
    ),
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["accepted", "duplicate", "declined", "refused", "x"]),
                       _VALUES))
def test_any_json_push_reply_raises_only_the_remote_error(value: dict[str, object]) -> None:
    with contextlib.suppress(RemoteProtocolError):
        PushReply.from_wire(json.dumps(value).encode())


def test_lines_skip_blanks_and_enforce_limits() -> None:
    body = encode_lines([b'{"a":1}', b'{"b":2}']) + b"\n\r\n"
    assert list(split_lines(body)) == [b'{"a":1}', b'{"b":2}']
    with pytest.raises(RemoteProtocolError, match="more than 1"):
        list(split_lines(body, max_lines=1))
    with pytest.raises(RemoteProtocolError, match="over the limit"):
        list(split_lines(b"x" * (MAX_LINE_BYTES + 1)))


def test_batches_bound_count_and_bytes_but_never_split_an_object() -> None:
    items = [(IDS[0], 10), (IDS[1], 10), (IDS[2], 100), (IDS[3], 1), (IDS[4], 1)]
    assert list(batches(items, max_count=2, max_bytes=50)) == [
        [IDS[0], IDS[1]], [IDS[2]], [IDS[3], IDS[4]]
    ]
    assert list(batches([], max_count=2, max_bytes=50)) == []
