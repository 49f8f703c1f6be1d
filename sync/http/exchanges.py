"""Carrying out an `Exchange`'s steps: requests to the peer over HTTP, questions to the store.

The exchange decides; this only does what it asks and reports back what the
network did (`PeerUnavailable` and `RemoteProtocolError` from the client).
"""

from __future__ import annotations

from collections.abc import Callable

from sync.gossip.exchange import (
    Exchange,
    FindSizes,
    FindWanted,
    ReadObjects,
    SendFetch,
    SendOffer,
    SendPush,
    SendReconcile,
    TakeIn,
)
from sync.http.client import PeerClient, PeerUnavailable
from sync.http.store_io import StoreIO
from sync.protocol.errors import LocalProtocolError, RemoteProtocolError


async def run_exchange(exchange: Exchange, client: PeerClient, objects: StoreIO,
                       after_step: Callable[[Exchange], None]) -> None:
    """Do what `exchange` asks until it is finished; `after_step` runs after each step."""
    url = exchange.url
    while not exchange.finished:
        step = exchange.next_step()
        try:
            if isinstance(step, SendReconcile):
                exchange.receive_reconcile(await client.reconcile(url, step.message))
            elif isinstance(step, FindWanted):
                exchange.receive_wanted(await objects.wanted(step.ids))
            elif isinstance(step, SendFetch):
                exchange.receive_fetched(await client.fetch(url, step.ids))
            elif isinstance(step, TakeIn):
                exchange.receive_intake(await objects.take_in(
                    step.lines, origin=url, expected=set(step.expected)))
            elif isinstance(step, FindSizes):
                exchange.receive_sizes(await objects.sizes(step.ids))
            elif isinstance(step, ReadObjects):
                exchange.receive_objects(await objects.raw_objects(step.ids))
            elif isinstance(step, SendPush):
                exchange.receive_push_reply(await client.push(url, step.lines))
            elif isinstance(step, SendOffer):
                exchange.receive_offer_reply(await client.offer(url, step.ids))
            else:
                raise LocalProtocolError(f"no way to carry out {step!r}")
        except PeerUnavailable as exc:
            exchange.peer_unavailable(str(exc))
        except RemoteProtocolError as exc:
            exchange.peer_misbehaved(str(exc))
        after_step(exchange)
