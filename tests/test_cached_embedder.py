"""The answerer's embedder remembers sentence vectors: same vectors, less work."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from commons.search.embedding import CachedEmbedder, HashEmbedder
from commons.search.vectors import memory_vectors
from commons.service import Commons
from commons.storage.home import HomePaths


class CountingEmbedder(HashEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.embedded: list[str] = []

    def embed_batch(self, texts: list[str]) -> Any:
        self.embedded += texts
        return super().embed_batch(texts)


def test_known_texts_are_not_embedded_again_and_vectors_are_the_same() -> None:
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, size=3)
    assert (cached.name, cached.dimension) == (inner.name, inner.dimension)
    texts = ["dry the maize", "store it in a cool place", "dry the maize"]
    first = cached.embed_batch(texts)
    assert inner.embedded == ["dry the maize", "store it in a cool place"]  # each text once
    np.testing.assert_array_equal(first, np.asarray(HashEmbedder().embed_batch(texts)))
    again = cached.embed_batch(["store it in a cool place", "goats need shade"])
    assert inner.embedded[2:] == ["goats need shade"]
    np.testing.assert_array_equal(again[0], first[1])
    cached.embed_batch(["a fourth text"])  # over the size: the least recently used goes
    cached.embed_batch(["dry the maize"])
    assert inner.embedded[-1] == "dry the maize"
    assert cached.embed_batch([]).shape == (0, inner.dimension)


def test_an_answer_asked_again_is_the_same_and_embeds_only_the_question(
    tmp_path: Path, clock: Callable[[], int]
) -> None:
    inner = CountingEmbedder()
    with Commons.init(HomePaths(tmp_path / "home"), clock=clock, embedder=inner,
                      vectors=memory_vectors) as commons:
        commons.search_index()
        question = "how do I run a community mirror?"
        first = commons.ask(question)
        before = len(inner.embedded)
        second = commons.ask(question)
        assert not first.abstained and first == second
        assert inner.embedded[before:] == [question]  # retrieval's query vector only
