"""One exchange with one peer, as steps: the sans-IO core of a sync or an offer.

Like `sync.protocol.negentropy.Reconciler` (and h11's `Connection`), an
`Exchange` never touches a socket, a thread, the store or the clock. It hands
out one step at a time (`next_step()`): a request to send to the peer, or a
question for the store. The driver performs the step and gives back what came
of it (`receive_...`); the exchange then says what to do next, until
`Finished`. What happened along the way comes out as `Notice`s.

A sync reconciles (Negentropy), fetches what we lack in batches and pushes
what the peer lacks in batches of bounded size. An offer names fresh ids and
pushes those the peer wants. A peer that serves an invalid object, or whose
answers break the protocol, has misbehaved: the exchange ends with
`Outcome.MISBEHAVED`. One that cannot be reached ends it with
`Outcome.UNAVAILABLE` (the driver says so: only it sees the network).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from sync.gossip.intake import Intake
from sync.protocol.errors import LocalProtocolError, RemoteProtocolError
from sync.protocol.messages import (
    MAX_BATCH_BYTES,
    MAX_IDS,
    MAX_ROUND_TRIPS,
    OfferReply,
    PushReply,
    Rejected,
    batches,
)
from sync.protocol.negentropy import DEFAULT_FRAME_SIZE_LIMIT, Reconciler, SortedItems

FETCH_BATCH = 256  # ids per fetch request
MAX_DECLINED_MEMORY = 100_000  # per peer: ids it declined, so we stop pushing them

NOTICE_KINDS = frozenset({"started", "stopped", "sync", "fetched", "pushed", "offered",
                          "received", "unreachable", "fault", "dropped", "peer", "refused",
                          "throttled"})


@dataclass(frozen=True)
class Notice:
    """Something worth a line in the gossip log (the driver stamps the time)."""

    kind: str
    message: str
    peer: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in NOTICE_KINDS:
            raise LocalProtocolError(f"unknown notice kind {self.kind!r}")


def _id_tuple(ids: Sequence[bytes], what: str, *, limit: int | None = None) -> tuple[bytes, ...]:
    out = tuple(ids)
    if not out:
        raise LocalProtocolError(f"{what} needs at least one id")
    if limit is not None and len(out) > limit:
        raise LocalProtocolError(f"{what} names {len(out)} ids; the limit is {limit}")
    return out


# -- steps: what the driver is asked to do next -------------------------------


@dataclass(frozen=True)
class SendReconcile:
    """POST this Negentropy message to /sync/reconcile; answer with `receive_reconcile`."""

    message: bytes


@dataclass(frozen=True)
class FindWanted:
    """Ask the store which of these ids we lack (and did not decline); `receive_wanted`."""

    ids: tuple[bytes, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", _id_tuple(self.ids, "FindWanted"))


@dataclass(frozen=True)
class SendFetch:
    """POST these ids to /sync/fetch; answer with the lines, `receive_fetched`."""

    ids: tuple[bytes, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", _id_tuple(self.ids, "SendFetch", limit=MAX_IDS))


@dataclass(frozen=True)
class TakeIn:
    """Verify and store these lines from the peer; answer with the report, `receive_intake`."""

    lines: tuple[bytes, ...]
    expected: frozenset[bytes]

    def __post_init__(self) -> None:
        if not self.lines:
            raise LocalProtocolError("TakeIn needs at least one line")


@dataclass(frozen=True)
class FindSizes:
    """Ask the store the sizes of these ids, oldest first; `receive_sizes`."""

    ids: tuple[bytes, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", _id_tuple(self.ids, "FindSizes"))


@dataclass(frozen=True)
class ReadObjects:
    """Read these objects' canonical bytes from the store; `receive_objects`."""

    ids: tuple[bytes, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", _id_tuple(self.ids, "ReadObjects", limit=MAX_IDS))


@dataclass(frozen=True)
class SendPush:
    """POST these lines to /sync/push; answer with the reply, `receive_push_reply`."""

    lines: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.lines or len(self.lines) > MAX_IDS:
            raise LocalProtocolError(
                f"a push carries 1 to {MAX_IDS} objects, not {len(self.lines)}")


@dataclass(frozen=True)
class SendOffer:
    """POST these fresh ids to /sync/offer; answer with the reply, `receive_offer_reply`."""

    ids: tuple[bytes, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", _id_tuple(self.ids, "SendOffer", limit=MAX_IDS))


@dataclass(frozen=True)
class Finished:
    """Nothing more to do; the exchange's outcome and counts are final."""


Step = (SendReconcile | FindWanted | SendFetch | TakeIn | FindSizes | ReadObjects | SendPush
        | SendOffer | Finished)


class Outcome(enum.Enum):
    OK = "ok"
    UNAVAILABLE = "unavailable"  # could not be reached, or would not serve us now
    MISBEHAVED = "misbehaved"  # broke the protocol or served an invalid object


def declined_ids(rejected: Sequence[Rejected]) -> set[bytes]:
    """The well-formed ids among a peer's `declined` list (anything else is ignored)."""
    out = set()
    for r in rejected:
        if len(r.id) != 64:
            continue
        try:
            oid = bytes.fromhex(r.id)
        except ValueError:
            continue
        if len(oid) == 32:
            out.add(oid)
    return out


class Exchange:
    """A sync (`Exchange.sync`) or an offer (`Exchange.offer`) with the peer at `url`."""

    def __init__(self, url: str, kind: str, step: Step, skip: set[bytes]) -> None:
        """Use `Exchange.sync` or `Exchange.offer`."""
        self.url = url
        self.kind = kind  # "sync" | "offer"
        self.fetched = 0
        self.pushed = 0
        self.round_trips = 0
        self.declined = 0
        self.refused = 0
        self.held_back = 0  # ids we lack but did not fetch: over this peer's ingress budget
        self.wanted: tuple[bytes, ...] = ()  # what the peer asked for after an offer
        self.outcome: Outcome | None = None
        self.reason: str | None = None  # why it was not OK
        self._step: Step = step
        self._skip = skip  # ids the peer declined before (shared, updated as it declines more)
        self._reconciler: Reconciler | None = None
        self._have: list[bytes] = []
        self._need: list[bytes] = []
        self._todo: list[bytes] = []
        self._next_batch = 0
        self._remaining: list[bytes] = []
        self._push_batches: deque[list[bytes]] = deque()
        self._pushing = 0
        self._notices: list[Notice] = []

    @classmethod
    def sync(cls, url: str, items: SortedItems, *, skip: set[bytes] | None = None) -> Exchange:
        """Reconcile our `items` with the peer's, fetch what we lack, push what it lacks."""
        reconciler = Reconciler(items, DEFAULT_FRAME_SIZE_LIMIT)
        exchange = cls(url, "sync", SendReconcile(reconciler.initiate()),
                       set() if skip is None else skip)
        exchange._reconciler = reconciler
        return exchange

    @classmethod
    def offer(cls, url: str, ids: Sequence[bytes], *, skip: set[bytes] | None = None) -> Exchange:
        """Offer fresh `ids`; push those the peer wants."""
        return cls(url, "offer", SendOffer(tuple(ids)), set() if skip is None else skip)

    # -- reading ----------------------------------------------------------------

    def next_step(self) -> Step:
        """What to do now. The same step until it is answered."""
        return self._step

    @property
    def finished(self) -> bool:
        return isinstance(self._step, Finished)

    def take_notices(self) -> list[Notice]:
        notices, self._notices = self._notices, []
        return notices

    # -- what the driver saw ----------------------------------------------------

    def peer_unavailable(self, reason: str) -> None:
        """The peer could not be reached or would not serve us (not its fault)."""
        self._expect(object, "peer_unavailable")
        self._finish(Outcome.UNAVAILABLE, reason)

    def peer_misbehaved(self, reason: str) -> None:
        """The peer's answer broke the protocol (a `RemoteProtocolError` in the driver)."""
        self._expect(object, "peer_misbehaved")
        self._finish(Outcome.MISBEHAVED, reason)

    def receive_reconcile(self, reply: bytes) -> None:
        self._expect(SendReconcile, "receive_reconcile")
        assert self._reconciler is not None
        self.round_trips += 1
        try:
            message, have, need = self._reconciler.reconcile(reply)
        except RemoteProtocolError as exc:
            self._finish(Outcome.MISBEHAVED, str(exc))
            return
        self._have.extend(have)
        self._need.extend(need)
        if message is not None:
            if self.round_trips >= MAX_ROUND_TRIPS:
                self._finish(Outcome.MISBEHAVED,
                             f"reconciliation did not end in {MAX_ROUND_TRIPS} round trips")
            else:
                self._step = SendReconcile(message)
        elif self._need:
            self._step = FindWanted(tuple(self._need))
        else:
            self._start_push([i for i in self._have if i not in self._skip])

    def receive_wanted(self, ids: Sequence[bytes]) -> None:
        self._expect(FindWanted, "receive_wanted")
        self._todo = list(ids)
        self._next_fetch()

    def receive_fetched(self, lines: Sequence[bytes]) -> None:
        self._expect(SendFetch, "receive_fetched")
        if not lines:  # it no longer has them (retracted meanwhile)
            self._next_fetch()
        else:
            self._step = TakeIn(tuple(lines), frozenset(self._remaining))

    def limit_fetch(self, allowed: int) -> None:
        """Fetch at most `allowed` more objects in this sync (the peer's ingress budget,
        checked by the driver before each `SendFetch`); the rest waits for a later one."""
        self._expect(SendFetch, "limit_fetch")
        if allowed >= len(self._remaining):
            return
        left = len(self._remaining) - allowed + max(0, len(self._todo) - self._next_batch)
        self.held_back += left
        self._todo = []
        self._next_batch = 0
        self._notice("throttled", f"{left} objects from {self.url} wait: this node's ingress"
                                  " budget for that peer is spent for now")
        if allowed <= 0:
            self._next_fetch()
        else:
            self._remaining = self._remaining[:allowed]
            self._step = SendFetch(tuple(self._remaining))

    def receive_intake(self, report: Intake) -> None:
        self._expect(TakeIn, "receive_intake")
        self.fetched += len(report.accepted)
        self.declined += len(report.declined)
        if report.accepted:
            self._notice("fetched", f"{len(report.accepted)} objects from {self.url}")
        if report.refused:
            self.refused += len(report.refused)
            self._finish(Outcome.MISBEHAVED,
                         f"served an invalid object: {report.refused[0].reason}")
            return
        self._remaining = [i for i in self._remaining if i not in report.received_ids]
        if self._remaining:
            self._step = SendFetch(tuple(self._remaining))
        else:
            self._next_fetch()

    def receive_offer_reply(self, reply: OfferReply) -> None:
        self._expect(SendOffer, "receive_offer_reply")
        self.wanted = reply.want
        self._start_push(list(reply.want))

    def receive_sizes(self, sized: Sequence[tuple[bytes, int]]) -> None:
        self._expect(FindSizes, "receive_sizes")
        self._push_batches = deque(batches(sized, max_count=MAX_IDS, max_bytes=MAX_BATCH_BYTES))
        self._next_push()

    def receive_objects(self, rows: Sequence[tuple[bytes, bytes]]) -> None:
        self._expect(ReadObjects, "receive_objects")
        if rows:
            self._step = SendPush(tuple(raw for _, raw in rows))
        else:  # gone meanwhile (retracted)
            self._next_push()

    def receive_push_reply(self, reply: PushReply) -> None:
        self._expect(SendPush, "receive_push_reply")
        self._pushing += reply.accepted
        if reply.declined and len(self._skip) < MAX_DECLINED_MEMORY:
            self._skip.update(declined_ids(reply.declined))
        if reply.refused:
            refused = len(reply.refused) + reply.more_refused
            self._notice("refused", f"{self.url} refused {refused} objects we sent:"
                                    f" {reply.refused[0].reason}")
        self._next_push()

    # -- moving on --------------------------------------------------------------

    def _expect(self, step: type, method: str) -> None:
        if isinstance(self._step, Finished) or not isinstance(self._step, step):
            raise LocalProtocolError(
                f"{method}() does not answer the current step, {type(self._step).__name__}"
            )

    def _notice(self, kind: str, message: str) -> None:
        self._notices.append(Notice(kind, message, self.url))

    def _finish(self, outcome: Outcome, reason: str | None = None) -> None:
        self.outcome = outcome
        self.reason = reason
        self._step = Finished()

    def _next_fetch(self) -> None:
        start = self._next_batch
        if start >= len(self._todo):
            self._start_push([i for i in self._have if i not in self._skip])
            return
        self._next_batch = start + FETCH_BATCH
        self._remaining = self._todo[start : start + FETCH_BATCH]
        self._step = SendFetch(tuple(self._remaining))

    def _start_push(self, ids: list[bytes]) -> None:
        if ids:
            self._step = FindSizes(tuple(ids))
        else:
            self._finish(Outcome.OK)

    def _next_push(self) -> None:
        if self._push_batches:
            self._step = ReadObjects(tuple(self._push_batches.popleft()))
            return
        if self._pushing:
            self._notice("pushed", f"{self._pushing} objects to {self.url}")
        self.pushed += self._pushing  # counted only once the whole push went through
        self._pushing = 0
        self._finish(Outcome.OK)
