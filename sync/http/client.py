"""The HTTP side of talking to one peer: each endpoint of docs/sync.md as a call.

Only transport lives here. A peer that cannot be reached, is busy, or answers
with an HTTP error raises `PeerUnavailable` (try again later, with back-off);
a peer whose answer breaks the protocol raises `RemoteProtocolError` (it
misbehaved, and loses standing).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable

import aiohttp

from commons.model.objects import Signer
from sync.protocol.auth import sign_request
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
from sync.protocol.proof import MAX_PROOF_BYTES, PROVE_PATH, Challenge, Proof, verify_proof

log = logging.getLogger(__name__)

TIMEOUT = aiohttp.ClientTimeout(total=120, connect=10, sock_read=60)
# An unproven address gets one short try: a socket that accepts and never
# answers must not hold a slot for minutes (docs/sync.md, slots).
PROOF_TIMEOUT = aiohttp.ClientTimeout(total=3, connect=3, sock_read=3)


class PeerUnavailable(Exception):
    """The peer could not be reached or would not serve us now; not its fault."""


class PeerClient:
    """Calls to other nodes' gossip endpoints over one shared aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, own_url: str | None = None, *,
                 signer: Signer | None = None, clock: Callable[[], int] | None = None) -> None:
        self._session = session
        self._headers = {PROTOCOL_HEADER: PROTOCOL}
        if own_url:
            self._headers[PEER_HEADER] = own_url
        if (signer is None) != (clock is None):
            raise ValueError("a signing client needs both a signer and a clock")
        self._signer = signer
        self._clock = clock
        self._keys: dict[str, bytes] = {}  # url -> the key the node there says it has

    def set_own_url(self, url: str) -> None:
        self._headers[PEER_HEADER] = url

    def known_key(self, url: str) -> bytes | None:
        """The key the node at `url` told us it has (unproven), if we asked."""
        return self._keys.get(url)

    async def _receiver_key(self, url: str) -> bytes:
        """The key of the node at `url`, from its /status (a request signed for the
        wrong key is refused there, so a false answer costs only that request)."""
        known = self._keys.get(url)
        if known is not None:
            return known
        try:
            async with self._session.get(url + "/status", headers=self._headers) as resp:
                if resp.status != 200:
                    raise PeerUnavailable(f"{url} answered /status with HTTP {resp.status}")
                text = (await _read_limited(resp, 64 * 1024, f"{url}/status")).decode("utf-8")
        except (TimeoutError, aiohttp.ClientError, OSError, UnicodeDecodeError) as exc:
            raise PeerUnavailable(f"{url} cannot be reached: {_describe(exc)}") from exc
        try:
            key = bytes.fromhex(json.loads(text)["public_key"])
            if len(key) != 32:
                raise ValueError
        except (ValueError, KeyError, TypeError) as exc:
            raise RemoteProtocolError(f"{url}/status does not give a public key") from exc
        self._keys[url] = key
        return key

    async def _post(
        self, url: str, path: str, body: bytes, content_type: str, limit: int, *,
        receiver: bytes | None = None, timeout: aiohttp.ClientTimeout | None = None,
    ) -> bytes:
        headers = {**self._headers, "Content-Type": content_type}
        if self._signer is not None and self._clock is not None:
            receiver = receiver or await self._receiver_key(url)
            headers.update(sign_request(self._signer, "POST", path, body, at=self._clock(),
                                        receiver=receiver))
        try:
            async with self._session.post(url + path, data=body, headers=headers,
                                          timeout=timeout or TIMEOUT) as resp:
                if resp.status != 200:
                    reason = (await resp.content.read(500)).decode("utf-8", "replace").strip()
                    if resp.status == 401:  # maybe a new key at that address: ask again next time
                        self._keys.pop(url, None)
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

    async def prove(self, url: str, key: bytes, challenge: bytes, *,
                    timeout: aiohttp.ClientTimeout = PROOF_TIMEOUT) -> None:
        """Return if the node at `url` proves it holds `key`.

        The challenge goes in a request signed for `key`, so a node with
        another key refuses it (401) before answering. Raises PeerUnavailable
        (no answer in time, or a refusal) or RemoteProtocolError (a false proof).
        """
        if self._signer is None:
            raise ValueError("only a signing client can ask for an address proof")
        body = await self._post(url, PROVE_PATH, Challenge(challenge).to_wire(),
                                "application/json", MAX_PROOF_BYTES, receiver=key,
                                timeout=timeout)
        verify_proof(Proof.from_wire(body), expected=key,
                     dialler=bytes(self._signer.verify_key), challenge=challenge)
        self._keys[url] = key

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
    if isinstance(exc, aiohttp.ClientConnectorError):
        # Its text names the TLS context ("ssl:default"), which says nothing to a person.
        return f"nothing answers at {exc.host}:{exc.port} ({exc.os_error.strerror or exc.os_error})"
    text = str(exc).replace(" ssl:default", "").replace(" ssl:None", "")
    return text or type(exc).__name__
