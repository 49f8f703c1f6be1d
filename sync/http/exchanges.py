"""Carrying out an `Exchange`'s steps: requests to the peer over HTTP, questions to the store.

The exchange decides; this only does what it asks and reports back what the
network did (`PeerUnavailable` and `RemoteProtocolError` from the client).
"""

from __future__ import annotations

from collections.abc import Callable

from sync.gossip.budget import IngressBudget
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
                       after_step: Callable[[Exchange], None], *,
                       ingress: IngressBudget | None = None,
                       clock: Callable[[], int] | None = None) -> None:
    """Do what `exchange` asks until it is finished; `after_step` runs after each step.

    With an `ingress` budget (and its `clock`), each fetch asks for no more than
    may enter from the peer's address now, and what it brings is charged before it
    is verified.
    """
    url = exchange.url
    while not exchange.finished:
        step = exchange.next_step()
        if ingress is not None and clock is not None and isinstance(step, (SendFetch, TakeIn)):
            # Charged to the address we chose to fetch from: the key the node there
            # claims is not proven, and must not let it spend another key's budget.
            peer = url
            if isinstance(step, SendFetch):
                allowed = ingress.allowance(peer, clock())
                if allowed < len(step.ids):
                    ingress.throttled(peer, len(step.ids) - allowed)
                    exchange.limit_fetch(allowed)
                    after_step(exchange)
                    continue
            else:
                ingress.charge(peer, len(step.lines), sum(len(line) for line in step.lines),
                               clock())
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
