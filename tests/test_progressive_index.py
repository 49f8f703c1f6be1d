"""A peer answers from the documents it received before their vectors are all made."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sync_support import Peer, cli, now, peers_in, wait_for

from commons.service import Commons
from commons.storage.home import HomePaths

pytestmark = [pytest.mark.slow, pytest.mark.model]

WORDS = (
    "river", "field", "seed", "harvest", "water", "stone", "market", "school",
    "library", "road", "bridge", "rain", "season", "grain", "mill", "tool",
    "roof", "wall", "garden", "well", "forest", "path", "village", "goat",
    "clay", "kiln", "loom", "thread",
)
DOCUMENTS = 300  # each of several passages: minutes of embedding on this machine


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[[str], Peer]]:
    yield from peers_in(tmp_path)


def filler(rng: random.Random, paragraphs: int) -> str:
    return "\n\n".join(
        " ".join(rng.choice(WORDS) for _ in range(120)).capitalize() + "."
        for _ in range(paragraphs)
    )


def test_a_joined_peer_answers_before_its_dense_index_is_complete(
    spawn: Callable[[str], Peer], onnx_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(9)
    a = spawn("a")
    with Commons(HomePaths(a.home), clock=now) as commons:
        for i in range(DOCUMENTS):
            commons.add_document(title=f"Notes {i}", body=filler(rng, 6))
        commons.add_document(
            title="Smoking fish over a slow fire",
            body="Cure tilapia by smoking it over a slow fire of damp hardwood for a day.\n\n"
            + filler(rng, 2),
        )
    monkeypatch.setenv("COMMONS_CACHE", str(onnx_cache))
    monkeypatch.setenv("COMMONS_EMBEDDER", "fake")  # the source's own index is not under test
    a.start()
    monkeypatch.setenv("COMMONS_EMBEDDER", "minilm")
    b = spawn("b").start(a)
    wait_for(lambda: b.status()["documents"] >= a.status()["documents"], "b holds a's documents")

    answer = json.loads(cli(b.home, "ask", "how do I smoke tilapia?", "--json"))
    assert not answer["abstained"]
    cited = answer["citations"][0]
    assert cited["title"] == "Smoking fish over a slow fire" and cited["origin"] == a.url
    index = answer["index"]
    assert not index["complete"] and index["dense"] < index["documents"]
    assert index["note"] == (
        f"dense index: {index['dense']} of {index['documents']} documents;"
        f" answer from words and {index['dense']} documents so far"
    )
    dense = b.status()["dense_index"]
    assert dense["documents"] == index["documents"] and not dense["complete"]
    text = cli(b.home, "ask", "how do I smoke tilapia?")
    assert "(dense index: " in text and "Smoking fish over a slow fire" in text
