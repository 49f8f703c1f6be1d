"""What a running node offers its owner, as Protocols (no aiohttp here).

`NodeApi` is the node's own part of the local API (`POST /api/peers`, ...,
next to the commons methods); `RunningNode` adds what an app that runs a node
in its own event loop needs (the terminal app does). `sync.http.node.Node`
implements both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from sync.gossip.peers import PeerInfo
from sync.gossip.session import SyncResult


class NodeEvent(Protocol):
    """One line of the gossip log."""

    @property
    def time(self) -> int: ...

    @property
    def kind(self) -> str: ...

    @property
    def message(self) -> str: ...

    @property
    def peer(self) -> str | None: ...


class NodeApi(Protocol):
    """The node's own methods, served by its local API beside the commons ones."""

    def peers(self) -> list[PeerInfo]: ...

    async def add_peer(self, url: str) -> PeerInfo: ...

    def remove_peer(self, url: str) -> bool: ...

    async def sync_now(self) -> list[SyncResult]: ...

    async def sync_with(self, url: str) -> SyncResult: ...

    async def status(self) -> dict[str, Any]: ...


class RunningNode(NodeApi, Protocol):
    """A node an app starts and stops in its own event loop, and whose log it shows."""

    @property
    def url(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def subscribe(self, callback: Callable[[NodeEvent], None]) -> None: ...

    def unsubscribe(self, callback: Callable[[NodeEvent], None]) -> None: ...
