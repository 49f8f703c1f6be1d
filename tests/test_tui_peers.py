"""Peers under Pilot, with the app's own node and a real second `commons serve` process."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, RichLog
from tui_support import RIVER_BODY, make_backend, make_home, settle, title_of

from commons.service import Commons
from commons.storage.home import HomePaths
from commons.storage.store import Stored
from sync.http.node import Node
from tui.app import CommonsApp
from tui.components.library import LibraryScreen
from tui.components.peers import PeersScreen

TITLE = "Rainwater tanks, from the river node"


def real_clock() -> int:
    return int(time.time())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def river(tmp_path: Path) -> Iterator[str]:
    """A second peer: its own home with one document, served by a real process."""
    root = tmp_path / "river"
    with Commons.init(HomePaths(root), clock=real_clock, name="river library") as other:
        other.add_document(title=TITLE, body=RIVER_BODY, tags=["water"])
    port = free_port()
    env = {**os.environ, "COMMONS_EMBEDDER": "fake"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui", "--home", str(root), "serve",
         "--listen", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while HomePaths(root).node_info() is None:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"commons serve exited early:\n{out}")
            if time.monotonic() > deadline:
                pytest.fail("commons serve did not start within 60 s")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
async def test_add_a_peer_and_see_its_document_arrive(tmp_path: Path, river: str) -> None:
    commons = make_home(tmp_path / "home", clock=real_clock, from_peer=False)
    node = Node(commons, listen="127.0.0.1:0", rng=random.Random(7), clock=real_clock)
    backend = make_backend(commons, node=node)
    try:
        app = CommonsApp(backend)
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot, app)
            await pilot.press("f5")
            await settle(pilot, app)
            peers = app.screen
            assert isinstance(peers, PeersScreen)
            assert node.url in str(peers.query_one("#node-status").render())
            box = peers.query_one("#address", Input)
            assert box.has_focus
            await pilot.press(*river, "enter")
            await settle(pilot, app)
            await pilot.press("ctrl+s")

            deadline = time.monotonic() + 60
            arrived: list[Stored] = []
            while not arrived and time.monotonic() < deadline:
                await pilot.pause(0.2)
                arrived = [d for d in commons.documents() if title_of(d) == TITLE]
            assert arrived, "the river node's document never arrived"
            assert arrived[0].origin == f"http://{river}"

            await settle(pilot, app)
            await pilot.pause(1.2)  # the table refreshes every second
            table = peers.query_one("#peer-table", DataTable)
            row = table.get_row(f"http://{river}")
            assert int(row[5]) >= 1  # received
            log_lines = [str(line.text) for line in peers.query_one("#gossip-log", RichLog).lines]
            assert any("started" in line for line in log_lines)
            assert any(river in line for line in log_lines)

            # The Library, in the background, followed the store as the document came in.
            library = app.mode_screens["library"]
            assert isinstance(library, LibraryScreen)
            assert any(r.title == TITLE for r in library.rows)
            await pilot.press("f2")
            await settle(pilot, app)
            assert app.screen is library
            row_view = next(r for r in library.shown if r.title == TITLE)
            assert row_view.author_name == "river library"
            assert library.badges[row_view.id][0].value == "✓"
        assert commons.paths.node_info() is None  # the node stopped with the app
    finally:
        backend.close()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_peers_show_plain_states_and_the_index(tmp_path: Path, size: tuple[int, int]) -> None:
    commons = make_home(tmp_path / "home", clock=real_clock, from_peer=False)
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    node = Node(commons, listen="127.0.0.1:0", peers=[nowhere], rng=random.Random(7),
                clock=real_clock, round_interval=3600.0)
    backend = make_backend(commons, node=node)
    try:
        app = CommonsApp(backend)
        async with app.run_test(size=size) as pilot:
            await settle(pilot, app)
            await pilot.press("f5")
            peers = app.screen
            assert isinstance(peers, PeersScreen)
            documents = commons.store.count("document")

            def shown() -> tuple[str, str]:
                row = peers.query_one("#peer-table", DataTable).get_row(nowhere)
                return str(row[3]), str(peers.query_one("#node-status").render())

            deadline = time.monotonic() + 60
            expected = ("failing: 1 try in a row", f"dense index: {documents} documents")
            while time.monotonic() < deadline:
                state, status = shown()
                if state == expected[0] and status.endswith(expected[1]):
                    break
                await pilot.pause(0.2)
            assert state == "failing: 1 try in a row"  # the first round could not reach it
            assert node.url in status and status.endswith(f"dense index: {documents} documents")
            assert "%" not in state
            table = peers.query_one("#peer-table", DataTable)
            labels = [str(c.label) for c in table.columns.values()]
            assert "State" in labels and "Health" not in labels
    finally:
        backend.close()
