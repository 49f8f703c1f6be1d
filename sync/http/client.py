"""The HTTP side of talking to one peer: each endpoint of docs/sync.md as a call.

Only transport lives here. A peer that cannot be reached, is busy, or answers
with an HTTP error raises `PeerUnavailable` (try again later, with back-off);
a peer whose answer breaks the protocol raises `RemoteProtocolError` (it
misbehaved, and loses standing).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import aiohttp

from sync.protocol.errors import RemoteProtocolError
from sync.protocol.messages import (
    LINES_TYPE,
    MAX_BATCH_BYTES,
    MAX_FRAME_BYTES,
    MAX_IDS,
    MAX_LINE_BYTES,
    PEER_HEADER,
    PROTOCOL,
    PROTOCOL_HEADER,
    RECONCILE_TYPE,
    FetchRequest,
    Offer,
    OfferReply,
    PushReply,
    encode_lines,
    split_lines,
)

log = logging.getLogger(__name__)

TIMEOUT = aiohttp.ClientTimeout(total=120, connect=10, sock_read=60)


class PeerUnavailable(Exception):
    """The peer could not be reached or would not serve us now; not its fault."""


class PeerClient:
    """Calls to other nodes' gossip endpoints over one shared aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, own_url: str | None = None) -> None:
        self._session = session
        self._headers = {PROTOCOL_HEADER: PROTOCOL}
        if own_url:
            self._headers[PEER_HEADER] = own_url

    def set_own_url(self, url: str) -> None:
        self._headers[PEER_HEADER] = url

    async def _post(
        self, url: str, path: str, body: bytes, content_type: str, limit: int
    ) -> bytes:
        headers = {**self._headers, "Content-Type": content_type}
        try:
            async with self._session.post(url + path, data=body, headers=headers) as resp:
                if resp.status != 200:
                    reason = (await resp.content.read(500)).decode("utf-8", "replace").strip()
                    raise PeerUnavailable(
                        f"{url} answered {path} with HTTP {resp.status}: {reason or resp.reason}"
                    )
                return await _read_limited(resp, limit, f"{url}{path}")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise PeerUnavailable(f"{url} cannot be reached: {_describe(exc)}") from exc

    async def reconcile(self, url: str, message: bytes) -> bytes:
        """One Negentropy round trip: our message in, the peer's reply out."""
        return await self._post(url, "/sync/reconcile", message, RECONCILE_TYPE, MAX_FRAME_BYTES)

    async def fetch(self, url: str, ids: Iterable[bytes]) -> list[bytes]:
        """The objects' JSON lines the peer holds of `ids` (maybe fewer, never others)."""
        request = FetchRequest(tuple(ids))
        body = await self._post(
            url, "/sync/fetch", request.to_wire(), "application/json",
            MAX_BATCH_BYTES + MAX_LINE_BYTES + 1024,
        )
        return list(split_lines(body, max_lines=MAX_IDS))

    async def offer(self, url: str, ids: Iterable[bytes]) -> OfferReply:
        offer = Offer(tuple(ids))
        body = await self._post(url, "/sync/offer", offer.to_wire(), "application/json", 64 * 1024)
        return OfferReply.from_wire(body, offer.ids)

    async def push(self, url: str, lines: Iterable[bytes]) -> PushReply:
        body = await self._post(url, "/sync/push", encode_lines(lines), LINES_TYPE, 1024 * 1024)
        return PushReply.from_wire(body)


async def _read_limited(resp: aiohttp.ClientResponse, limit: int, where: str) -> bytes:
    if resp.content_length is not None and resp.content_length > limit:
        raise RemoteProtocolError(f"{where} sent {resp.content_length} bytes; the limit is {limit}")
    chunks = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise RemoteProtocolError(f"{where} sent more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc)
    return text or type(exc).__name__
