"""Range-based set reconciliation, wire-compatible with Negentropy protocol V1.

Each peer holds a set of items ``(timestamp, id)``. The client sends
fingerprints of ranges of its sorted set; the server answers with finer
fingerprints where they differ, and both recurse until a range is small enough
to send as a plain list of ids. At the end the client knows which ids only it
has and which only the server has. Moving the items is the caller's job.

Nothing here does IO: a `Reconciler` turns bytes from the peer into bytes for
the peer, so any transport (HTTP, a socket, a test's in-memory link) can carry
the messages. Malformed input from the peer raises `RemoteProtocolError` and
nothing else; calling the API wrongly raises `LocalProtocolError`.

Usage::

    client = Reconciler(SortedItems(mine))
    server = Reconciler(SortedItems(theirs))
    msg: bytes | None = client.initiate()
    while msg is not None:
        msg, have, need = client.reconcile(server.respond(msg))
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from enum import Enum
from itertools import accumulate
from typing import NamedTuple

from sync.protocol.errors import LocalProtocolError, RemoteProtocolError
from sync.protocol.wire import (
    BUCKETS,
    DEFAULT_FRAME_SIZE_LIMIT,
    ID_LIST_THRESHOLD,
    ID_SIZE,
    INFINITY,
    LONGEST_BOUND,
    MAX_TIMESTAMP,
    MAX_U64,
    MIN_FRAME_SIZE_LIMIT,
    PROTOCOL_VERSION,
    START,
    TRAILER_RESERVE,
    Bound,
    FingerprintRange,
    IdListRange,
    Range,
    SkipRange,
    decode_message,
    encode_ranges,
    encode_varint,
    fingerprint,
)

log = logging.getLogger(__name__)

class SortedItems:
    """An immutable set of ``(timestamp, id)`` items in protocol order.

    Sorted by timestamp, then id bytes. Ids must be unique: id lists are
    compared by id alone, so one id under two timestamps would confuse them.
    Prefix sums of the ids make any range's fingerprint O(1).
    """

    __slots__ = ("_items", "_sums")

    def __init__(self, items: Iterable[tuple[int, bytes]] = ()) -> None:
        checked: list[tuple[int, bytes]] = []
        for timestamp, id_ in items:
            if not isinstance(timestamp, int) or not 0 <= timestamp < MAX_TIMESTAMP:
                raise LocalProtocolError(
                    f"timestamp must be an int in [0, 2**64-1), got {timestamp!r}"
                )
            if not isinstance(id_, bytes) or len(id_) != ID_SIZE:
                raise LocalProtocolError(f"id must be {ID_SIZE} bytes, got {id_!r}")
            checked.append((timestamp, id_))
        if len({id_ for _, id_ in checked}) != len(checked):
            raise LocalProtocolError("duplicate id in items")
        checked.sort()
        self._items = checked
        self._sums = list(accumulate((int.from_bytes(i, "little") for _, i in checked), initial=0))

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        return iter(self._items)

    def __getitem__(self, index: int) -> tuple[int, bytes]:
        return self._items[index]

    def ids(self, lower: int = 0, upper: int | None = None) -> list[bytes]:
        return [id_ for _, id_ in self._items[lower:upper]]

    def fingerprint(self, lower: int = 0, upper: int | None = None) -> bytes:
        """Fingerprint of the items with index in ``[lower, upper)``."""
        if upper is None:
            upper = len(self._items)
        return fingerprint(self._sums[upper] - self._sums[lower], upper - lower)

    def lower_bound(self, bound: Bound, start: int = 0) -> int:
        """Index of the first item at or after `bound`, searching from `start`."""
        return bisect_left(self._items, bound.key, start)

    def boundary(self, index: int) -> Bound:
        """The shortest bound that separates item ``index - 1`` from item ``index``."""
        prev_ts, prev_id = self._items[index - 1]
        ts, id_ = self._items[index]
        if ts != prev_ts:
            return Bound(ts)
        shared = 0
        while prev_id[shared] == id_[shared]:
            shared += 1
        return Bound(ts, id_[: shared + 1])


class Role(Enum):
    CLIENT = "client"
    SERVER = "server"


class Reconciliation(NamedTuple):
    """What the client learnt from one server message.

    `have_ids` and `need_ids` hold only ids first found in this round: an id
    is never reported twice in one session, so callers can act per round.
    """

    next_message: bytes | None  # None: reconciliation is complete
    have_ids: list[bytes]  # we have them, the server does not
    need_ids: list[bytes]  # the server has them, we do not


class _Frame:
    """An outgoing message being built within an optional size limit."""

    def __init__(self, limit: int) -> None:
        self._buf = bytearray([PROTOCOL_VERSION])
        self._last_timestamp = 0
        self._limit = limit

    def room(self) -> int:
        """Bytes that may still be added before the closing ranges."""
        if not self._limit:
            return MAX_U64
        return self._limit - TRAILER_RESERVE - len(self._buf)

    def try_add(self, ranges: list[Range]) -> bool:
        chunk, last_timestamp = encode_ranges(ranges, self._last_timestamp)
        if len(chunk) > self.room():
            return False
        self._buf += chunk
        self._last_timestamp = last_timestamp
        return True

    def close(self, ranges: list[Range]) -> None:
        # Fits by construction: room() always leaves TRAILER_RESERVE free.
        chunk, self._last_timestamp = encode_ranges(ranges, self._last_timestamp)
        self._buf += chunk

    def value(self) -> bytes:
        return bytes(self._buf)


class Reconciler:
    """One side of one reconciliation session.

    The client calls `initiate` once, then `reconcile` with each server reply
    until it returns no next message. The server calls `respond` for each
    client message; every message is self-contained, so a server-side
    instance keeps no per-session state and may answer any number of clients.
    Nothing here bounds the number of rounds: a transport talking to an
    untrusted server should.

    `frame_size_limit` caps every message this side builds (0: no cap). A
    capped reply covers what fits and ends with one fingerprint for the rest,
    so the exchange takes more round trips but still converges.
    """

    def __init__(
        self, items: SortedItems, frame_size_limit: int = DEFAULT_FRAME_SIZE_LIMIT
    ) -> None:
        if not isinstance(items, SortedItems):
            raise LocalProtocolError("items must be a SortedItems")
        if frame_size_limit != 0 and frame_size_limit < MIN_FRAME_SIZE_LIMIT:
            raise LocalProtocolError(
                f"frame_size_limit must be 0 or at least {MIN_FRAME_SIZE_LIMIT}"
            )
        self._items = items
        self._limit = frame_size_limit
        self._role: Role | None = None
        self._done = False
        self._reported_have: set[bytes] = set()
        self._reported_need: set[bytes] = set()

    @property
    def role(self) -> Role | None:
        return self._role

    @property
    def done(self) -> bool:
        return self._done

    def initiate(self) -> bytes:
        """The client's first message."""
        if self._role is not None:
            raise LocalProtocolError(
                f"initiate() on a Reconciler already used as {self._role.value}"
            )
        self._role = Role.CLIENT
        frame = _Frame(self._limit)
        # A split is at most ~1.1 kB, far below the smallest allowed limit.
        frame.close(self._split(0, len(self._items), INFINITY))
        return frame.value()

    def reconcile(self, message: bytes) -> Reconciliation:
        """Client side: take the server's reply, return what to send next and what we learnt.

        The ids returned are those first found in this round (see `Reconciliation`).
        """
        if self._role is not Role.CLIENT:
            raise LocalProtocolError("reconcile() is for the client; call initiate() first")
        if self._done:
            raise LocalProtocolError("reconciliation is already complete")
        if message and message[0] != PROTOCOL_VERSION and 0x60 <= message[0] <= 0x6F:
            raise RemoteProtocolError(
                f"server does not speak protocol V1 (offers version byte 0x{message[0]:02x})"
            )
        ranges = decode_message(message)
        have: list[bytes] = []
        need: list[bytes] = []
        reply = self._process(ranges, have, need)
        have = [i for i in dict.fromkeys(have) if i not in self._reported_have]
        need = [i for i in dict.fromkeys(need) if i not in self._reported_need]
        self._reported_have.update(have)
        self._reported_need.update(need)
        log.debug(
            "reconcile: %d ranges in, %d bytes out, %d have, %d need",
            len(ranges),
            len(reply),
            len(have),
            len(need),
        )
        if len(reply) == 1:
            self._done = True
            return Reconciliation(None, have, need)
        return Reconciliation(reply, have, need)

    def respond(self, message: bytes) -> bytes:
        """Server side: the reply to one client message."""
        if self._role is Role.CLIENT:
            raise LocalProtocolError("respond() is for the server; this Reconciler initiated")
        self._role = Role.SERVER
        if message and message[0] != PROTOCOL_VERSION and 0x60 <= message[0] <= 0x6F:
            # A version we don't speak but might one day: the spec's downgrade
            # signal is a reply holding only the highest version we support.
            return bytes([PROTOCOL_VERSION])
        ranges = decode_message(message)
        reply = self._process(ranges, None, None)
        log.debug("respond: %d ranges in, %d bytes out", len(ranges), len(reply))
        return reply

    def _process(
        self, ranges: tuple[Range, ...], have: list[bytes] | None, need: list[bytes] | None
    ) -> bytes:
        # `have`/`need` are given on the client only: it records differences
        # where the server answers with ids; the server instead answers a
        # client's id list with its own.
        items = self._items
        frame = _Frame(self._limit)
        prev_bound = START
        prev_index = 0
        skipping = False
        for r in ranges:
            lower = prev_index
            upper = items.lower_bound(r.upper, lower)
            answer: list[Range] = []
            if isinstance(r, FingerprintRange):
                if r.fingerprint != items.fingerprint(lower, upper):
                    answer = self._split(lower, upper, r.upper)
            elif isinstance(r, IdListRange):
                if have is not None and need is not None:
                    ours = items.ids(lower, upper)
                    ours_set = set(ours)
                    theirs = dict.fromkeys(r.ids)
                    have.extend(i for i in ours if i not in theirs)
                    need.extend(i for i in theirs if i not in ours_set)
                else:
                    answer = [IdListRange(r.upper, tuple(items.ids(lower, upper)))]

            if not answer:
                # Merged with any following skips; a trailing skip is implicit.
                skipping = True
            else:
                lead: list[Range] = [SkipRange(prev_bound)] if skipping else []
                if frame.try_add(lead + answer):
                    skipping = False
                else:
                    resume = lower
                    if self._role is Role.SERVER:
                        resume = self._add_partial_id_list(frame, lead, lower, upper)
                        if resume != lower:
                            lead = []
                    # Everything from `resume` on goes into one fingerprint:
                    # the peer splits it again in its next message.
                    tail = FingerprintRange(INFINITY, items.fingerprint(resume))
                    frame.close([*lead, tail])
                    break
            prev_bound = r.upper
            prev_index = upper
        return frame.value()

    def _add_partial_id_list(self, frame: _Frame, lead: list[Range], lower: int, upper: int) -> int:
        """Send as much of our id list for ``[lower, upper)`` as fits; return where we stopped."""
        header = (LONGEST_BOUND + 1 if lead else 0) + LONGEST_BOUND + 1
        header += len(encode_varint(upper - lower))
        count = min((frame.room() - header) // ID_SIZE, upper - lower - 1)
        if count < 1:
            return lower
        # Cut at the shortest bound between the last id sent and the next one.
        cut = lower + count
        partial = IdListRange(self._items.boundary(cut), tuple(self._items.ids(lower, cut)))
        if not frame.try_add([*lead, partial]):
            return lower
        return cut

    def _split(self, lower: int, upper: int, upper_bound: Bound) -> list[Range]:
        """Describe ``[lower, upper)`` (ending at `upper_bound`) for the peer to compare."""
        items = self._items
        count = upper - lower
        if count < ID_LIST_THRESHOLD:
            return [IdListRange(upper_bound, tuple(items.ids(lower, upper)))]
        per_bucket, extra = divmod(count, BUCKETS)
        ranges: list[Range] = []
        start = lower
        for bucket in range(BUCKETS):
            end = start + per_bucket + (1 if bucket < extra else 0)
            bound = upper_bound if end == upper else items.boundary(end)
            ranges.append(FingerprintRange(bound, items.fingerprint(start, end)))
            start = end
        return ranges
