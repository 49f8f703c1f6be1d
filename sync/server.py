"""The gossip endpoints other nodes call (docs/sync.md), and GET /status.

Handlers are thin: they check limits, decode one message, ask the node, and
encode the answer. Anything malformed from the peer becomes a 4xx with a
reason; our own failures become a 5xx and a log line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sync.errors import ProtocolError, RemoteProtocolError
from sync.intake import read_raw, wanted
from sync.messages import (
    LINES_TYPE,
    MAX_BATCH_BYTES,
    MAX_FRAME_BYTES,
    MAX_JSON_BYTES,
    MAX_PUSH_BYTES,
    PEER_HEADER,
    RECONCILE_TYPE,
    FetchRequest,
    Offer,
    OfferReply,
    PushReply,
    split_lines,
)
from sync.negentropy import Reconciler
from sync.peers import PeerUrlError, normalise_url

if TYPE_CHECKING:
    from sync.node import Node

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(node: Node) -> web.Application:
    app = web.Application(client_max_size=MAX_PUSH_BYTES, middlewares=[_limits(node)])
    routes = GossipRoutes(node)
    app.router.add_post("/sync/reconcile", routes.reconcile)
    app.router.add_post("/sync/fetch", routes.fetch)
    app.router.add_post("/sync/offer", routes.offer)
    app.router.add_post("/sync/push", routes.push)
    app.router.add_get("/status", routes.status)
    return app


def _error(status: int, reason: str) -> web.Response:
    return web.Response(status=status, text=reason + "\n")


def _limits(node: Node) -> Any:
    @web.middleware
    async def limits(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/sync/"):
            return await handler(request)
        remote = request.remote or "unknown"
        if node.policy.blocks_peer(remote):
            return _error(403, "this node does not serve your address")
        now = node.clock()
        wait = node.request_limiter.take(remote, 1, now)
        if not wait and request.content_length:
            wait = node.byte_limiter.take(remote, request.content_length, now)
        if wait:
            return web.Response(
                status=429,
                text=f"rate limit: try again in {wait:.0f} seconds\n",
                headers={"Retry-After": str(max(1, round(wait)))},
            )
        response = await handler(request)
        if isinstance(response, web.Response) and response.body is not None:
            node.byte_limiter.take(remote, len(response.body), now)  # type: ignore[arg-type]
        return response

    return limits


async def _body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    data = await request.read()
    if len(data) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(data))
    return data


class GossipRoutes:
    def __init__(self, node: Node) -> None:
        self.node = node

    async def reconcile(self, request: web.Request) -> web.Response:
        message = await _body(request, MAX_FRAME_BYTES)
        items = await self.node.sorted_items()
        try:
            # The server side keeps no state between messages, so each request
            # is answered on its own: no session to track or expire.
            reply = Reconciler(items).respond(message)
        except ProtocolError as exc:
            return _error(400, f"bad reconciliation message: {exc}")
        return web.Response(body=reply, content_type=RECONCILE_TYPE)

    async def fetch(self, request: web.Request) -> web.Response:
        try:
            wanted_ids = FetchRequest.from_wire(await _body(request, MAX_JSON_BYTES)).ids
        except RemoteProtocolError as exc:
            return _error(400, str(exc))
        rows = await asyncio.to_thread(read_raw, self.node.store, wanted_ids)
        lines: list[bytes] = []
        size = 0
        for _, raw in rows:  # stop near the batch limit; the client asks again for the rest
            if lines and size + len(raw) > MAX_BATCH_BYTES:
                break
            lines.append(raw + b"\n")
            size += len(raw) + 1
        self.node.note_served(request.headers.get(PEER_HEADER), len(lines))
        return web.Response(body=b"".join(lines), content_type=LINES_TYPE)

    async def offer(self, request: web.Request) -> web.Response:
        try:
            offered = Offer.from_wire(await _body(request, MAX_JSON_BYTES)).ids
        except RemoteProtocolError as exc:
            return _error(400, str(exc))
        want = await asyncio.to_thread(wanted, self.node.store, offered, self.node.declined)
        return web.Response(body=OfferReply(tuple(want)).to_wire(), content_type="application/json")

    async def push(self, request: web.Request) -> web.Response:
        body = await _body(request, MAX_PUSH_BYTES)
        try:
            lines = list(split_lines(body))
        except RemoteProtocolError as exc:
            return _error(400, str(exc))
        origin = _origin(request)
        intake = await self.node.take_in(lines, origin=origin, expected=None)
        reply = PushReply(
            accepted=len(intake.accepted),
            duplicate=intake.duplicate,
            declined=tuple(intake.declined),
            refused=tuple(intake.refused),
        )
        if intake.accepted or intake.refused:
            self.node.note_pushed_to_us(origin, intake)
        return web.Response(body=reply.to_wire(), content_type="application/json")

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(await self.node.status())


def _origin(request: web.Request) -> str:
    """Where pushed objects came from: the URL the peer gave, else its address."""
    claimed = request.headers.get(PEER_HEADER)
    if claimed:
        try:
            return normalise_url(claimed)
        except PeerUrlError:
            pass
    return f"peer:{request.remote or 'unknown'}"
