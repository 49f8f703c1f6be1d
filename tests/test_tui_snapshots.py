"""Snapshots of the main screens at 80x24 and 120x40, from a fixed home and clock.

Update after a deliberate change of the UI with
`pytest tests/test_tui_snapshots.py --snapshot-update`, and look at the SVGs.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, TextArea
from tui_support import make_backend, make_home, settle

from commons.settings import default_home
from tui.app import CommonsApp
from tui.backend import Backend

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
Compare = Callable[..., bool]
Steps = Callable[[Pilot[Any]], Awaitable[None]]

NOTE = """# Keeping seeds dry

Store seeds in paper envelopes inside a sealed jar with a spoon of dry rice.

## Labels

Write the plant, the place and the year on every envelope."""


@pytest.fixture
def backend() -> Iterator[Backend]:
    # The default home (under the test's own XDG_DATA_HOME) shows as ~/… on screen.
    commons = make_home(default_home(None, os.environ))
    commons.search_index()  # every vector made, as after `commons init`: no partial-index note
    yield make_backend(commons)
    commons.close()


def shoot(snap_compare: Compare, backend: Backend, size: tuple[int, int], steps: Steps) -> bool:
    app = CommonsApp(backend, start_node=False)

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot, app)
        await steps(pilot)
        await settle(pilot, app)
        # A blinking cursor would make the picture depend on the moment it is taken.
        for widget in app.screen.query("Input, TextArea"):
            widget.cursor_blink = False  # type: ignore[attr-defined]
        await pilot.pause()

    return snap_compare(app, terminal_size=size, run_before=run_before)


async def nothing(pilot: Pilot[Any]) -> None:
    pass


async def ask(pilot: Pilot[Any]) -> None:
    await pilot.press("f3")
    pilot.app.screen.query_one("#question", Input).value = "how do I run a community mirror?"
    await pilot.press("enter")
    await settle(pilot, pilot.app)


async def open_citation(pilot: Pilot[Any]) -> None:
    await ask(pilot)
    await pilot.press("1")


async def contribute(pilot: Pilot[Any]) -> None:
    await pilot.press("f4")
    screen = pilot.app.screen
    screen.query_one("#paste", TextArea).text = NOTE
    screen.query_one("#tags", Input).value = "seeds, storage"
    await pilot.press("ctrl+r")


async def peers(pilot: Pilot[Any]) -> None:
    await pilot.press("f5")


async def identity(pilot: Pilot[Any]) -> None:
    await pilot.press("f6")


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    "steps",
    [nothing, ask, open_citation, contribute, peers, identity],
    ids=["library", "ask", "citation", "contribute", "peers", "identity"],
)
def test_screen(
    snap_compare: Compare, backend: Backend, size: tuple[int, int], steps: Steps
) -> None:
    assert shoot(snap_compare, backend, size, steps)


def test_help_screen(snap_compare: Compare, backend: Backend) -> None:
    async def help_(pilot: Pilot[Any]) -> None:
        await pilot.press("f1")

    assert shoot(snap_compare, backend, (80, 24), help_)
