"""What a node tells about itself: its gossip log (events and subscribers) and /status."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sync.gossip.exchange import Notice
from sync.gossip.policy import Policy
from sync.gossip.session import GossipSession
from sync.protocol.messages import PROTOCOL

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeEvent:
    """One line of the gossip log (kinds: started, stopped, sync, fetched, pushed,
    offered, received, unreachable, fault, dropped, peer, refused)."""

    time: int
    kind: str
    message: str
    peer: str | None = None


WARNING_KINDS = frozenset({"fault", "dropped", "refused"})  # worth a look


class EventBus:
    """Hands each event to every subscriber, in the event loop's thread."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self._subscribers: list[Callable[[NodeEvent], None]] = []

    def subscribe(self, callback: Callable[[NodeEvent], None]) -> None:
        self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[[NodeEvent], None]) -> None:
        self._subscribers.remove(callback)

    def emit(self, kind: str, message: str, peer: str | None = None) -> None:
        self.publish([Notice(kind, message, peer)])

    def publish(self, notices: Iterable[Notice]) -> None:
        for notice in notices:
            event = NodeEvent(self._clock(), notice.kind, notice.message, notice.peer)
            # One readable line per event, for `serve`'s output and the app's log file.
            level = logging.WARNING if event.kind in WARNING_KINDS else logging.INFO
            log.log(level, "%-11s %s", event.kind, event.message)
            for callback in list(self._subscribers):
                try:
                    callback(event)
                except Exception:  # a subscriber's bug must not stop the gossip
                    log.exception("node event subscriber failed")


def index_state(task: asyncio.Future[Any] | None) -> str:
    """none, warming, failed or ready: how the search index's catch-up at start went."""
    if task is None:
        return "none"
    if not task.done():
        return "warming"
    return "failed" if task.exception() else "ready"


def status_view(
    *,
    name: str | None,
    url: str,
    public_key: bytes,
    mirror: bool,
    counts: dict[str, int],
    session: GossipSession,
    started_at: int | None,
    index: str,
    declined: int,
    dense: dict[str, Any] | None = None,
    policy: Policy,
    quarantined: int = 0,
    ingress: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON of GET /status (and of the local API's `status`)."""
    return {
        "protocol": PROTOCOL,
        "name": name,
        "url": url,
        "public_key": public_key.hex(),
        "mirror": mirror,
        "objects": counts,
        "total": sum(counts.values()),
        "documents": counts.get("document", 0),
        "peers": session.peer_counts(),
        "rounds": session.rounds,
        "last_round": session.last_round,
        "started_at": started_at,
        "index": index,
        # {documents, dense, complete, rate (documents/s), note}: the progressive index
        "dense_index": dense,
        "declined": declined,
        "quarantined": quarantined,  # stored objects that stopped verifying, set aside
        "policy": policy.describe(),
        # the ingress budgets (sync.gossip.budget) and what they let in and held back
        "ingress": ingress,
    }
