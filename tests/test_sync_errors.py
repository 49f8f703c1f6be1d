"""Errors in their families at the HTTP edges: the peer's fault, the caller's, or ours.

The handlers are tested over fakes of the Protocols they depend on
(`GossipService`, `ServedNode`), so no home or node is needed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import pytest
from aiohttp import test_utils, web

from commons.api import CommonsApi
from sync.api import NodeApi
from sync.gossip.intake import Intake
from sync.gossip.peers import PeerInfo
from sync.gossip.policy import Policy
from sync.gossip.session import PeerLimits, SyncResult
from sync.http.local_api import NODE_METHODS, LocalApiServer
from sync.http.server import build_app
from sync.protocol.auth import Sender
from sync.protocol.negentropy import SortedItems

NOW = 1_800_000_000


class FakeService:
    """A GossipService with no objects, whose reconciliation can be made to fail on our side."""

    def __init__(self) -> None:
        self.limits = PeerLimits(Policy())
        self.our_bug = False

    def now(self) -> int:
        return NOW

    public_key = bytes(32)

    def origin_of(self, sender: Sender | None, claimed: str | None, remote: str) -> str:
        return f"peer:{remote}"

    async def sorted_items(self) -> SortedItems:
        if self.our_bug:  # a Reconciler given this raises LocalProtocolError
            return cast(SortedItems, [(NOW, b"\0" * 32)])
        return SortedItems()

    async def read_objects(self, ids: Sequence[bytes]) -> list[bytes]:
        return []

    async def wanted(self, ids: Sequence[bytes]) -> list[bytes]:
        return list(ids)

    async def take_in(self, lines: list[bytes], *, origin: str,
                      expected: set[bytes] | None) -> Intake:
        return Intake()

    def note_served(self, peer: str | None, count: int) -> None:
        pass

    def note_pushed_to_us(self, origin: str, report: Intake) -> None:
        pass

    def heard_from(self, sender: Sender | None) -> None:
        pass

    async def status(self) -> dict[str, Any]:
        return {"fake": True}


async def client_for(app: web.Application) -> AsyncIterator[test_utils.TestClient[Any, Any]]:
    client = test_utils.TestClient(test_utils.TestServer(app))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def service() -> FakeService:
    return FakeService()


@pytest.fixture
async def gossip(service: FakeService) -> AsyncIterator[test_utils.TestClient[Any, Any]]:
    async for client in client_for(build_app(service)):
        yield client


async def test_a_peers_garbage_is_its_fault(gossip: test_utils.TestClient[Any, Any]) -> None:
    resp = await gossip.post("/sync/reconcile", data=b"\x61\xff\xff")
    assert resp.status == 400 and "bad reconciliation message" in await resp.text()


async def test_our_own_protocol_error_is_a_500_with_a_reason_and_a_log_line(
    gossip: test_utils.TestClient[Any, Any], service: FakeService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    service.our_bug = True
    with caplog.at_level(logging.ERROR, logger="sync.http.server"):
        resp = await gossip.post("/sync/reconcile", data=b"\x61")
    text = await resp.text()
    assert resp.status == 500, text
    assert "this node failed to answer /sync/reconcile: items must be a SortedItems" in text
    assert "bad reconciliation message" not in text
    assert any("failed on our side" in r.getMessage() for r in caplog.records)


# -- the local API ------------------------------------------------------------------


class FakeNode:
    def __init__(self) -> None:
        self.added: list[str] = []

    def peers(self) -> list[PeerInfo]:
        return []

    async def add_peer(self, url: str) -> PeerInfo:
        self.added.append(url)
        return PeerInfo(url, None, None, 0.5, 0, 0, 0, False)

    def remove_peer(self, url: str) -> bool:
        return False

    async def sync_now(self) -> list[SyncResult]:
        return []

    async def sync_with(self, url: str) -> SyncResult:
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    async def status(self) -> dict[str, Any]:
        return {}

    async def index_ready(self) -> None:
        pass


class FakeApi:
    def echo(self, text: str) -> str:
        return text

    def broken(self, text: str) -> str:
        return text + 1  # type: ignore[operator]  # a bug inside the method

    def lookup(self, key: str) -> str:
        return {"a": "b"}[key]


TOKEN = "secret"


@pytest.fixture
async def local_api() -> AsyncIterator[test_utils.TestClient[Any, Any]]:
    server = LocalApiServer(FakeNode(), cast(CommonsApi, FakeApi()), TOKEN)
    async for client in client_for(server.build_app()):
        yield client


async def call(client: test_utils.TestClient[Any, Any], method: str,
               **kwargs: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.post(f"/api/{method}", json=kwargs,
                             headers={"Authorization": f"Bearer {TOKEN}"})
    return resp.status, await resp.json()


async def test_arguments_that_do_not_fit_are_bad_arguments(
    local_api: test_utils.TestClient[Any, Any],
) -> None:
    assert await call(local_api, "echo", text="hi") == (200, {"result": "hi"})
    status, body = await call(local_api, "echo", txt="hi")
    assert status == 400 and body["type"] == "CommonsError"
    assert body["error"].startswith("bad arguments for echo:")
    status, body = await call(local_api, "add_peer")
    assert (status, body) == (400, {"error": "add_peer needs the argument 'url'",
                                    "type": "CommonsError"})


async def test_a_type_error_inside_a_method_is_the_nodes_failure(
    local_api: test_utils.TestClient[Any, Any],
) -> None:
    for method, kwargs in [("broken", {"text": "x"}), ("lookup", {"key": "zz"}),
                           ("sync_with", {"url": "http://127.0.0.1:9"})]:
        status, body = await call(local_api, method, **kwargs)
        assert status == 500, (method, body)
        assert body["error"].startswith(f"the node failed to run {method}:")
        assert "bad arguments" not in body["error"] and "needs the argument" not in body["error"]


def test_the_node_methods_the_local_api_serves_are_those_of_the_protocol() -> None:
    methods = {name for name in vars(NodeApi) if not name.startswith("_")}
    assert set(NODE_METHODS) == methods
