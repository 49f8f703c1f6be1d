"""The gossip protocol's JSON messages, their limits, and object framing.

Reconciliation itself travels as raw Negentropy V1 bytes (see
`sync.protocol.negentropy`); everything else a node says to another is one of the small
frozen messages below, or objects as JSON Lines (one canonical object a line,
exactly the bundle form).

Constructors validate, so a message that exists is well-formed. Building one
wrongly in our own code raises `LocalProtocolError`; `from_wire` turns any
malformed input from a peer into `RemoteProtocolError` and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Self

from commons.model.objects import MAX_OBJECT_BYTES
from sync.protocol.errors import LocalProtocolError, RemoteProtocolError
from sync.protocol.wire import DEFAULT_FRAME_SIZE_LIMIT

PROTOCOL = "commons-sync/1"
PROTOCOL_HEADER = "Commons-Protocol"
# A client may say where it can be reached (used as the origin of what it pushes).
PEER_HEADER = "Commons-Peer"
RECONCILE_TYPE = "application/octet-stream"
LINES_TYPE = "application/x-ndjson"

# Every Negentropy message we build stays within FRAME_SIZE_LIMIT; we accept a
# little more from peers, whose own limit may differ.
FRAME_SIZE_LIMIT = DEFAULT_FRAME_SIZE_LIMIT
MAX_FRAME_BYTES = 64 * 1024
MAX_ROUND_TRIPS = 100
MAX_IDS = 512  # ids in one fetch or offer request
MAX_JSON_BYTES = 80 * 1024  # a fetch/offer request: 512 hex ids and some slack
MAX_LINE_BYTES = 2 * MAX_OBJECT_BYTES + 1024  # one object's JSON line, escapes included
MAX_BATCH_BYTES = 8 * 1024 * 1024  # a fetch reply or a push body, roughly
MAX_PUSH_BYTES = MAX_BATCH_BYTES + MAX_LINE_BYTES
MAX_PUSH_LINES = MAX_IDS  # objects in one push, as many as one fetch may ask for
MAX_REASONS = 16  # declined or refused entries a push reply lists; the rest are counted


def _ids(values: Iterable[bytes], what: str) -> tuple[bytes, ...]:
    ids = tuple(values)
    if len(ids) > MAX_IDS:
        raise LocalProtocolError(f"{what} may name at most {MAX_IDS} ids, got {len(ids)}")
    for oid in ids:
        if not isinstance(oid, bytes) or len(oid) != 32:
            raise LocalProtocolError(f"{what}: an object id is 32 bytes, got {oid!r}")
    if len(set(ids)) != len(ids):
        raise LocalProtocolError(f"{what} names an id twice")
    return ids


def _decode(data: bytes, what: str) -> dict[str, Any]:
    if len(data) > MAX_JSON_BYTES:
        raise RemoteProtocolError(f"{what} is {len(data)} bytes; the limit is {MAX_JSON_BYTES}")
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise RemoteProtocolError(f"{what} is not valid JSON") from exc
    if not isinstance(value, dict):
        raise RemoteProtocolError(f"{what} must be a JSON object")
    return value


def _hex_ids(value: object, what: str) -> list[bytes]:
    if not isinstance(value, list) or len(value) > MAX_IDS:
        raise RemoteProtocolError(f"{what} must be a list of at most {MAX_IDS} ids")
    out = []
    for item in value:
        if not isinstance(item, str) or len(item) != 64:
            raise RemoteProtocolError(f"{what}: an id is 64 hex characters")
        try:
            out.append(bytes.fromhex(item))
        except ValueError as exc:
            raise RemoteProtocolError(f"{what}: {item[:16]}… is not hex") from exc
    return out


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@dataclass(frozen=True)
class IdList:
    """A list of object ids: the body of a fetch or an offer request."""

    ids: tuple[bytes, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", _ids(self.ids, type(self).__name__))

    def to_wire(self) -> bytes:
        return _dump({"ids": [i.hex() for i in self.ids]})

    @classmethod
    def from_wire(cls, data: bytes) -> Self:
        value = _decode(data, "an id list")
        try:
            return cls(tuple(_hex_ids(value.get("ids"), "ids")))
        except LocalProtocolError as exc:
            raise RemoteProtocolError(str(exc)) from exc


class FetchRequest(IdList):
    """POST /sync/fetch: send me these objects (reply: JSON Lines)."""


class Offer(IdList):
    """POST /sync/offer: I have these fresh objects; which do you want?"""


@dataclass(frozen=True)
class OfferReply:
    want: tuple[bytes, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "want", _ids(self.want, "OfferReply"))

    def to_wire(self) -> bytes:
        return _dump({"want": [i.hex() for i in self.want]})

    @classmethod
    def from_wire(cls, data: bytes, offered: Iterable[bytes]) -> OfferReply:
        value = _decode(data, "an offer reply")
        want = _hex_ids(value.get("want"), "want")
        if not set(want) <= set(offered):
            raise RemoteProtocolError("the peer wants ids it was not offered")
        try:
            return cls(tuple(want))
        except LocalProtocolError as exc:
            raise RemoteProtocolError(str(exc)) from exc


@dataclass(frozen=True)
class Rejected:
    """One pushed object that was not stored, and why."""

    id: str  # hex, or "" when the line did not even parse far enough to have one
    reason: str


@dataclass(frozen=True)
class PushReply:
    """The answer to POST /sync/push.

    `declined` objects were fine but are not kept here (policy, withdrawn);
    `refused` ones were invalid, which is the sender's fault.
    """

    accepted: int
    duplicate: int
    declined: tuple[Rejected, ...] = ()
    refused: tuple[Rejected, ...] = ()
    more_declined: int = 0  # declined objects beyond those listed
    more_refused: int = 0

    def __post_init__(self) -> None:
        counts = (self.accepted, self.duplicate, self.more_declined, self.more_refused)
        if min(counts) < 0:
            raise LocalProtocolError("counts cannot be negative")

    @classmethod
    def summarised(cls, accepted: int, duplicate: int, declined: Sequence[Rejected],
                   refused: Sequence[Rejected]) -> PushReply:
        """A reply that lists the first MAX_REASONS of each kind and counts the rest."""
        return cls(accepted, duplicate, tuple(declined[:MAX_REASONS]),
                   tuple(refused[:MAX_REASONS]), max(0, len(declined) - MAX_REASONS),
                   max(0, len(refused) - MAX_REASONS))

    def to_wire(self) -> bytes:
        return _dump(
            {
                "accepted": self.accepted,
                "duplicate": self.duplicate,
                "declined": [{"id": r.id, "reason": r.reason} for r in self.declined],
                "refused": [{"id": r.id, "reason": r.reason} for r in self.refused],
                "more_declined": self.more_declined,
                "more_refused": self.more_refused,
            }
        )

    @classmethod
    def from_wire(cls, data: bytes) -> PushReply:
        value = _decode(data, "a push reply")
        try:
            counts = [value["accepted"], value["duplicate"]]
            if not all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
                raise TypeError
            lists = []
            for key in ("declined", "refused"):
                lists.append(
                    tuple(Rejected(str(r["id"])[:64], str(r["reason"])[:500]) for r in value[key])
                )
            more = [value.get("more_declined", 0), value.get("more_refused", 0)]
            if not all(isinstance(c, int) and not isinstance(c, bool) for c in more):
                raise TypeError
            return cls(counts[0], counts[1], lists[0], lists[1], more[0], more[1])
        except (KeyError, TypeError, LocalProtocolError) as exc:
            raise RemoteProtocolError("a push reply has missing or malformed fields") from exc


# -- objects as JSON Lines ----------------------------------------------------


def encode_lines(lines: Iterable[bytes]) -> bytes:
    """Objects' canonical bytes, one a line (the canonical form holds no newline)."""
    return b"".join(line + b"\n" for line in lines)


def split_lines(body: bytes, max_lines: int | None = None) -> Iterator[bytes]:
    """The non-blank lines of a JSON Lines body, each within MAX_LINE_BYTES."""
    count = 0
    start = 0
    while start < len(body):  # line by line: a hostile body may hold millions of them
        end = body.find(b"\n", start)
        if end < 0:
            end = len(body)
        line = body[start:end].rstrip(b"\r")
        start = end + 1
        if not line.strip():
            continue
        if len(line) > MAX_LINE_BYTES:
            raise RemoteProtocolError(f"an object line of {len(line)} bytes is over the limit")
        count += 1
        if max_lines is not None and count > max_lines:
            raise RemoteProtocolError(f"more than {max_lines} objects in one message")
        yield line


def batches(items: Iterable[tuple[bytes, int]], *, max_count: int, max_bytes: int) -> Iterator[
    list[bytes]
]:
    """Group (id, size) pairs into id batches of bounded count and total size.

    A single item over `max_bytes` still gets a batch of its own.
    """
    batch: list[bytes] = []
    size = 0
    for oid, n in items:
        if batch and (len(batch) >= max_count or size + n > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(oid)
        size += n
    if batch:
        yield batch
