"""The gossip endpoints other nodes call (docs/sync.md), and GET /status.

Handlers are thin: they check limits, decode one message, ask the node, and
encode the answer. Anything malformed from the peer becomes a 4xx with a
reason; our own failures (a `LocalProtocolError` is one) become a 5xx with a
reason and a log line, never an answer that blames the peer.

The handlers know the node only as a `GossipService`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

from aiohttp import web

from commons.model.errors import StoreError
from sync.gossip.intake import Intake
from sync.gossip.session import PeerLimits
from sync.protocol.auth import KEY_HEADER, AuthError, Sender, verify_request
from sync.protocol.errors import LocalProtocolError, RemoteProtocolError
from sync.protocol.messages import (
    LINES_TYPE,
    MAX_BATCH_BYTES,
    MAX_FRAME_BYTES,
    MAX_JSON_BYTES,
    MAX_PUSH_BYTES,
    MAX_PUSH_LINES,
    PEER_HEADER,
    RECONCILE_TYPE,
    FetchRequest,
    Offer,
    OfferReply,
    PushReply,
    split_lines,
)
from sync.protocol.negentropy import Reconciler, SortedItems
from sync.protocol.proof import PROVE_PATH, Challenge, Proof

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class GossipService(Protocol):
    """What the gossip endpoints need from a node."""

    @property
    def limits(self) -> PeerLimits:
        """Which addresses to serve, and how much."""
        ...

    def now(self) -> int: ...

    @property
    def public_key(self) -> bytes:
        """This node's key: signed requests must name it."""
        ...

    def origin_of(self, sender: Sender | None, claimed: str | None, remote: str) -> str:
        """Whom to credit with what a request brought (see GossipSession.origin_of)."""
        ...

    async def sorted_items(self) -> SortedItems:
        """Our (created_at, id) set, for a reconciliation."""
        ...

    async def read_objects(self, ids: Sequence[bytes]) -> list[bytes]:
        """The canonical bytes of the stored objects among `ids`, oldest first."""
        ...

    async def wanted(self, ids: Sequence[bytes]) -> list[bytes]:
        """Of `ids`, those we lack and did not decline."""
        ...

    async def take_in(self, lines: list[bytes], *, origin: str,
                      expected: set[bytes] | None) -> Intake:
        """Verify, filter and store objects from a peer; one bad line never stops the rest."""
        ...

    def heard_from(self, sender: Sender | None) -> None:
        """A peer reconciles with us: if its key is proven at an address, that one is up."""
        ...

    def prove(self, dialler: bytes, challenge: Challenge) -> Proof:
        """Our signed answer to `dialler`'s challenge (sync.protocol.proof)."""
        ...

    def note_served(self, peer: str | None, count: int) -> None: ...

    def note_pushed_to_us(self, origin: str, report: Intake) -> None: ...

    async def status(self) -> dict[str, Any]: ...


def build_app(service: GossipService) -> web.Application:
    tarpit = Tarpit()
    app = web.Application(client_max_size=MAX_PUSH_BYTES,
                          middlewares=[_our_faults, _limits(service, tarpit)])
    routes = GossipRoutes(service, tarpit)
    app.router.add_post("/sync/reconcile", routes.reconcile)
    app.router.add_post("/sync/fetch", routes.fetch)
    app.router.add_post("/sync/offer", routes.offer)
    app.router.add_post("/sync/push", routes.push)
    app.router.add_post(PROVE_PATH, routes.prove)
    app.router.add_get("/status", routes.status)
    return app


def _error(status: int, reason: str) -> web.Response:
    return web.Response(status=status, text=reason + "\n")


@web.middleware
async def _our_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Our own misuse of the protocol code is our bug: a 500 with a reason, and a log line."""
    try:
        return await handler(request)
    except LocalProtocolError as exc:
        log.exception("answering %s failed on our side", request.path)
        return _error(500, f"this node failed to answer {request.path}: {exc}")
    except (sqlite3.Error, OSError, StoreError) as exc:  # a full disk, a damaged store
        log.exception("answering %s failed: the store is unavailable", request.path)
        if _disk_full(exc):
            return _error(503, "this node's disk is full: it takes nothing in until its"
                               f" operator frees space ({exc}); try again later")
        return _error(503, f"this node cannot use its store now ({exc}); try again later")


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return "disk is full" in str(exc) or "database or disk is full" in str(exc)


# Requests that change what a node holds must be signed (sync.protocol.auth);
# anyone may reconcile and fetch, within the limits of their address. A proof
# names the dialler's key, so its challenge must come signed too.
SIGNED_ONLY = frozenset({"/sync/push", "/sync/offer", PROVE_PATH})
SENDER: web.RequestKey[Sender | None] = web.RequestKey("sender", object)  # type: ignore[arg-type]


class Tarpit:
    """Holds a refused push's answer back a little (up to `seconds`, for at most `room`
    requests at once): a flood that ignores Retry-After then waits on each connection
    instead of costing this node a request's work as fast as it can send them."""

    def __init__(self, seconds: float = 1.0, room: int = 64) -> None:
        self.seconds = seconds
        self._room = asyncio.Semaphore(room)

    async def hold(self, wait: float) -> None:
        if self._room.locked():
            return
        async with self._room:
            await asyncio.sleep(min(wait, self.seconds))


def _limits(service: GossipService, tarpit: Tarpit) -> Any:
    @web.middleware
    async def limits(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not (request.path.startswith("/sync/") or request.path == "/status"):
            return await handler(request)
        remote = request.remote or "unknown"
        if service.limits.blocks(remote):
            return _error(403, "this node does not serve your address")
        now = service.now()
        sender: Sender | None = None
        claimed = request.headers.get(KEY_HEADER)
        if request.path == "/sync/push" and claimed:
            # A key whose ingress budget is spent is turned away before its body is even
            # read or its proof checked: a flood that ignores Retry-After costs little.
            # Nothing is spent here, so naming someone else's key gains nothing.
            ingress = service.limits.ingress
            wait = ingress.closed_for(f"key:{claimed}", now)
            if wait:
                ingress.throttled(f"key:{claimed}", 0)
                await tarpit.hold(wait)
                return _too_many(wait, "this node takes no more objects from your key now"
                                       " (its ingress budget, docs/sync.md)")
        if request.path.startswith("/sync/"):
            # The body is bounded by the app's client_max_size; its hash is signed.
            body = await _body(request, MAX_PUSH_BYTES)
            try:
                sender = verify_request(request.headers, request.method, request.path, body,
                                        now=now, receiver=service.public_key)
            except AuthError as exc:
                return _error(401, str(exc))
            if sender is None and request.path in SIGNED_ONLY:
                return _error(401, f"{request.path} needs a signed request (docs/sync.md,"
                                   " authentication); unsigned ones may only reconcile and fetch")
        request[SENDER] = sender
        budget = sender.label if sender is not None else remote  # per key, else per address
        wait = service.limits.admit(budget, request.content_length, now)
        if wait:
            return _too_many(wait, "rate limit")
        response = await handler(request)
        if isinstance(response, web.Response) and response.body is not None:
            service.limits.charge(budget, len(response.body), now)  # type: ignore[arg-type]
        return response

    return limits


def _too_many(wait: float, why: str) -> web.Response:
    seconds = max(1, math.ceil(wait))
    return web.Response(status=429, text=f"{why}: try again in {seconds} seconds\n",
                        headers={"Retry-After": str(seconds)})


async def _body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    data = await request.read()
    if len(data) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(data))
    return data


class GossipRoutes:
    def __init__(self, service: GossipService, tarpit: Tarpit) -> None:
        self.service = service
        self.tarpit = tarpit
        self._turns: dict[str, tuple[asyncio.Lock, list[int]]] = {}  # peer -> lock, users

    @contextlib.asynccontextmanager
    async def _intake_turn(self, peer: str) -> AsyncIterator[None]:
        turn, users = self._turns.setdefault(peer, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with turn:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._turns[peer]  # nobody holds or waits: forget it (the table stays small)

    async def reconcile(self, request: web.Request) -> web.Response:
        message = await _body(request, MAX_FRAME_BYTES)
        self.service.heard_from(request.get(SENDER))
        items = await self.service.sorted_items()
        try:
            # The server side keeps no state between messages, so each request
            # is answered on its own: no session to track or expire.
            reply = Reconciler(items).respond(message)
        except RemoteProtocolError as exc:
            return _error(400, f"bad reconciliation message: {exc}")
        return web.Response(body=reply, content_type=RECONCILE_TYPE)

    async def fetch(self, request: web.Request) -> web.Response:
        try:
            wanted_ids = FetchRequest.from_wire(await _body(request, MAX_JSON_BYTES)).ids
        except RemoteProtocolError as exc:
            return _error(400, str(exc))
        lines: list[bytes] = []
        size = 0
        for raw in await self.service.read_objects(wanted_ids):
            # Stop near the batch limit; the client asks again for the rest.
            if lines and size + len(raw) > MAX_BATCH_BYTES:
                break
            lines.append(raw + b"\n")
            size += len(raw) + 1
        self.service.note_served(request.headers.get(PEER_HEADER), len(lines))
        return web.Response(body=b"".join(lines), content_type=LINES_TYPE)

    async def offer(self, request: web.Request) -> web.Response:
        try:
            offered = Offer.from_wire(await _body(request, MAX_JSON_BYTES)).ids
        except RemoteProtocolError as exc:
            return _error(400, str(exc))
        want = await self.service.wanted(offered)
        sender = request.get(SENDER)
        if want and sender is not None:
            # Want no more than may enter from this peer now; the rest comes in a later round.
            ingress = self.service.limits.ingress
            allowed = ingress.allowance(sender.label, self.service.now())
            if allowed < len(want):
                ingress.throttled(sender.label, len(want) - allowed)
                want = want[:allowed]
        return web.Response(body=OfferReply(tuple(want)).to_wire(), content_type="application/json")

    async def push(self, request: web.Request) -> web.Response:
        body = await _body(request, MAX_PUSH_BYTES)
        sender = request.get(SENDER)
        if sender is not None:
            # The ingress budget is spent before any line is split, parsed or verified;
            # counting newlines is an upper bound on the objects, and cheap.
            lines_at_most = min(MAX_PUSH_LINES + 1,  # more is refused whole below
                                body.count(b"\n") + (0 if body.endswith(b"\n") else 1))
            wait = self.service.limits.ingress.admit(sender.label, lines_at_most, len(body),
                                                     self.service.now())
            if wait:
                await self.tarpit.hold(wait)
                return _too_many(wait, "this node takes no more objects from your key now"
                                       " (its ingress budget, docs/sync.md)")
        try:
            # Splitting megabytes is work: off the loop, like parsing and verifying.
            lines = await asyncio.to_thread(_push_lines, body)
        except RemoteProtocolError as exc:
            return _error(400, str(exc))
        del body
        origin = self.service.origin_of(request.get(SENDER), request.headers.get(PEER_HEADER),
                                        request.remote or "unknown")
        # One intake at a time per key: a key pushing on many connections at once
        # queues behind itself, and other peers' pushes go on beside it.
        async with self._intake_turn(sender.label if sender is not None else origin):
            intake = await self.service.take_in(lines, origin=origin, expected=None)
        reply = PushReply.summarised(len(intake.accepted), intake.duplicate, intake.declined,
                                     intake.refused)
        if intake.accepted or intake.refused:
            self.service.note_pushed_to_us(origin, intake)
        return web.Response(body=reply.to_wire(), content_type="application/json")

    async def prove(self, request: web.Request) -> web.Response:
        sender = request.get(SENDER)
        if sender is None:  # the middleware refuses unsigned ones; never answer one
            return _error(401, f"{PROVE_PATH} needs a signed request")
        try:
            challenge = Challenge.from_wire(await _body(request, MAX_JSON_BYTES))
        except RemoteProtocolError as exc:
            return _error(400, str(exc))
        proof = self.service.prove(sender.key, challenge)
        return web.Response(body=proof.to_wire(), content_type="application/json")

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(await self.service.status())


def _push_lines(body: bytes) -> list[bytes]:
    """A push body's object lines; more than MAX_PUSH_LINES refuses the whole push."""
    lines = list(split_lines(body, max_lines=MAX_PUSH_LINES))
    return lines
