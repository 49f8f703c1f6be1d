"""Negentropy protocol V1 on the wire: ranges, bounds, fingerprints and messages.

The byte format only (see docs/sync.md); `sync.protocol.negentropy` holds the
reconciler that uses it. Malformed input raises `RemoteProtocolError` and
nothing else; building a message wrongly raises `LocalProtocolError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeAlias

from sync.protocol.errors import LocalProtocolError, RemoteProtocolError

PROTOCOL_VERSION = 0x61
ID_SIZE = 32
FINGERPRINT_SIZE = 16
# Reserved as "infinity", the upper end of the last range; no item may use it.
MAX_TIMESTAMP = 2**64 - 1
# A range that differs is split into this many sub-ranges, unless it holds
# fewer than ID_LIST_THRESHOLD items, in which case its ids are sent as-is.
# Same values as the spec's reference behaviour, so our first message for a
# given set is byte-identical to other V1 implementations'.
BUCKETS = 16
ID_LIST_THRESHOLD = 2 * BUCKETS
MIN_FRAME_SIZE_LIMIT = 4096
# Below common 64 KiB message caps, and bounds what one peer message can make
# us build (a Fingerprint range of 19 bytes can cost ~1 kB of reply).
DEFAULT_FRAME_SIZE_LIMIT = 60_000

MAX_U64 = 2**64 - 1
_ID_MODULUS = 2**256
LONGEST_BOUND = 10 + 1 + ID_SIZE  # 64-bit varint, prefix length, full id
# Kept free in a limited frame so it can always be closed: a Skip up to where
# we stopped, then a Fingerprint of everything after it up to infinity.
TRAILER_RESERVE = (LONGEST_BOUND + 1) + (1 + 1 + 1 + FINGERPRINT_SIZE)


class Mode(IntEnum):
    SKIP = 0
    FINGERPRINT = 1
    ID_LIST = 2


def encode_varint(n: int) -> bytes:
    """Base-128, most significant digit first, high bit set on all but the last byte."""
    if n < 0:
        raise ValueError(f"varints are unsigned, got {n}")
    digits = [n & 0x7F]
    n >>= 7
    while n:
        digits.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(digits))


def fingerprint(id_sum: int, count: int) -> bytes:
    """Fingerprint of a range from the sum of its ids (as little-endian ints) and its size."""
    total = (id_sum % _ID_MODULUS).to_bytes(ID_SIZE, "little")
    return hashlib.sha256(total + encode_varint(count)).digest()[:FINGERPRINT_SIZE]


@dataclass(frozen=True, slots=True)
class Bound:
    """Exclusive upper end of a range: a timestamp and an id prefix.

    The prefix stands for the full id padded with zero bytes, so the shortest
    prefix that separates two neighbouring items is enough.
    """

    timestamp: int
    id_prefix: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.timestamp <= MAX_TIMESTAMP:
            raise LocalProtocolError(f"bound timestamp out of range: {self.timestamp}")
        if len(self.id_prefix) > ID_SIZE:
            raise LocalProtocolError(f"bound id prefix longer than {ID_SIZE} bytes")

    @property
    def key(self) -> tuple[int, bytes]:
        """Comparable with items' ``(timestamp, id)`` tuples."""
        return (self.timestamp, self.id_prefix.ljust(ID_SIZE, b"\0"))


INFINITY = Bound(MAX_TIMESTAMP)
START = Bound(0)


@dataclass(frozen=True, slots=True)
class SkipRange:
    """The sender has nothing more to say about this range."""

    upper: Bound


@dataclass(frozen=True, slots=True)
class FingerprintRange:
    upper: Bound
    fingerprint: bytes


@dataclass(frozen=True, slots=True)
class IdListRange:
    """Every id the sender has in this range."""

    upper: Bound
    ids: tuple[bytes, ...]


Range: TypeAlias = SkipRange | FingerprintRange | IdListRange


def encode_message(ranges: Iterable[Range]) -> bytes:
    """A whole V1 message: the version byte, then the ranges (ascending, adjacent)."""
    body, _ = encode_ranges(ranges, 0)
    return bytes([PROTOCOL_VERSION]) + body


def encode_ranges(ranges: Iterable[Range], last_timestamp: int) -> tuple[bytes, int]:
    # Timestamps are deltas from the previous bound in the same message, so
    # encoding a piece of a message needs (and updates) that running state.
    out = bytearray()
    for r in ranges:
        bound = r.upper
        if bound.timestamp == MAX_TIMESTAMP:
            out.append(0)
        else:
            delta = bound.timestamp - last_timestamp
            if delta < 0:
                raise LocalProtocolError("ranges must be in ascending order")
            out += encode_varint(delta + 1)
        last_timestamp = bound.timestamp
        out += encode_varint(len(bound.id_prefix))
        out += bound.id_prefix
        if isinstance(r, SkipRange):
            out.append(Mode.SKIP)
        elif isinstance(r, FingerprintRange):
            out.append(Mode.FINGERPRINT)
            out += r.fingerprint
        else:
            out.append(Mode.ID_LIST)
            out += encode_varint(len(r.ids))
            out += b"".join(r.ids)
    return bytes(out), last_timestamp


class _Reader:
    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise RemoteProtocolError("message ends in the middle of a range")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def varint(self) -> int:
        data, pos, value = self._data, self._pos, 0
        while True:
            if pos >= len(data):
                raise RemoteProtocolError("message ends in the middle of a varint")
            byte = data[pos]
            pos += 1
            value = (value << 7) | (byte & 0x7F)
            if value > MAX_U64:
                raise RemoteProtocolError("varint does not fit in 64 bits")
            if not byte & 0x80:
                self._pos = pos
                return value


def decode_message(data: bytes) -> tuple[Range, ...]:
    """Parse a whole V1 message; raises `RemoteProtocolError` if it is malformed."""
    if not data:
        raise RemoteProtocolError("empty message")
    if data[0] != PROTOCOL_VERSION:
        raise RemoteProtocolError(f"not a protocol V1 message (version byte 0x{data[0]:02x})")
    reader = _Reader(bytes(data))
    reader.take(1)
    ranges: list[Range] = []
    last_timestamp = 0
    prev_key = START.key
    while reader.remaining():
        encoded = reader.varint()
        if encoded == 0 or last_timestamp == MAX_TIMESTAMP:
            timestamp = MAX_TIMESTAMP
        else:
            # Saturate like a 64-bit peer would rather than reject: a sum past
            # the top can only mean "infinity".
            timestamp = min(last_timestamp + encoded - 1, MAX_TIMESTAMP)
        last_timestamp = timestamp
        prefix_len = reader.varint()
        if prefix_len > ID_SIZE:
            raise RemoteProtocolError(f"bound id prefix of {prefix_len} bytes")
        bound = Bound(timestamp, reader.take(prefix_len))
        if bound.key < prev_key:
            raise RemoteProtocolError("range bounds go backwards")
        prev_key = bound.key
        mode = reader.varint()
        if mode == Mode.SKIP:
            ranges.append(SkipRange(bound))
        elif mode == Mode.FINGERPRINT:
            ranges.append(FingerprintRange(bound, reader.take(FINGERPRINT_SIZE)))
        elif mode == Mode.ID_LIST:
            count = reader.varint()
            if count * ID_SIZE > reader.remaining():
                raise RemoteProtocolError(f"id list claims {count} ids, message is shorter")
            ranges.append(IdListRange(bound, tuple(reader.take(ID_SIZE) for _ in range(count))))
        else:
            raise RemoteProtocolError(f"unknown range mode {mode}")
    return tuple(ranges)
