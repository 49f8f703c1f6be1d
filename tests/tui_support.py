"""A fixed home for the app's tests: same keys, same documents, same clock every run.

Imported by the other test_tui_* modules; it holds no tests itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from embedders import embedder_for_tests
from textual.app import App
from textual.pilot import Pilot

from commons import seeds
from commons.api import LocalApi
from commons.model.identity import Identity
from commons.model.objects import Document, Profile, sign
from commons.search.vectors import memory_vectors
from commons.service import Commons
from commons.storage.home import HomePaths
from commons.storage.store import ObjectStore, Stored
from tui.backend import Backend

NOW = 1_800_000_000
ME = Identity(bytes(range(32)))
RIVER = Identity(bytes(range(32, 64)))
PEER_ORIGIN = "http://127.0.0.1:7401"

MY_TITLE = "Cleaning a sand water filter"
MY_BODY = """# Cleaning a sand water filter

A slow sand filter cleans water as it seeps through a bed of fine sand. The top
layer of the sand, the schmutzdecke, does most of the work.

## How often

Scrape the top two centimetres of sand when the flow drops to half of what it
was after the last cleaning, usually every one to two months.

## Safety

Boil or chlorinate the first water after a cleaning: the living layer takes a
few days to grow back.
"""
RIVER_TITLE = "Rainwater tanks for a school"
RIVER_BODY = """# Rainwater tanks for a school

Size the tank for the longest dry spell: a month of drinking water for every
pupil needs about sixty litres each. Keep the first flush of every storm out of
the tank, and fit a tap above the bottom so sediment stays behind.
"""


class Clock:
    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def make_home(
    root: Path, clock: Callable[[], int] | None = None, *, from_peer: bool = True
) -> Commons:
    """A home with a fixed key, the seeds, one document of ours and one from a peer.

    A test that syncs with a real process runs on the wall clock and leaves out
    the peer's document, which is dated by the fixed clock (the far side would
    refuse it as from the future).
    """
    clock = clock or Clock()
    paths = HomePaths(root)
    root.mkdir(parents=True)
    os.chmod(root, 0o700)
    ME.save(paths.key)
    ObjectStore(paths.db).close()
    commons = Commons(paths, clock=clock, embedder=embedder_for_tests(), vectors=memory_vectors)
    commons.set_name("tester")
    commons.import_lines(seeds.bundle_lines(), origin="seed")
    commons.add_document(title=MY_TITLE, body=MY_BODY, tags=["water", "how-to"])
    if not from_peer:
        return commons
    for content in (
        Profile(author=RIVER.public_key, created_at=NOW - 86400, name="river library"),
        Document(
            author=RIVER.public_key,
            created_at=NOW - 3600,
            title=RIVER_TITLE,
            body=RIVER_BODY,
            tags=("school", "water"),
        ),
    ):
        commons.store.put(sign(content, RIVER), now=NOW, origin=PEER_ORIGIN)
    return commons


def title_of(stored: Stored) -> str | None:
    content = stored.obj.content
    return content.title if isinstance(content, Document) else None


def make_backend(commons: Commons, clock: Any = None, **kwargs: Any) -> Backend:
    return Backend(
        LocalApi(commons),
        clock=clock or commons.clock,
        home=commons.paths.root,
        public_key=commons.public_key.hex(),
        commons=commons,
        node_note=kwargs.pop("node_note", "the tests run without a node"),
        **kwargs,
    )


async def settle(pilot: Pilot[Any], app: App[Any], rounds: int = 3) -> None:
    """Let workers finish and their messages land."""
    for _ in range(rounds):
        await pilot.pause()
        await app.workers.wait_for_complete()
    await pilot.pause()


def notifications(app: App[Any]) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]
