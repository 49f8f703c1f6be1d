"""The embedder in-process tests give a home: the hash embedder, unless
$COMMONS_TEST_EMBEDDER names another (e.g. `minilm` for a run with the real model)."""

from __future__ import annotations

import os

from commons.search.embedding import Embedder, load_embedder


def embedder_for_tests() -> Embedder:
    return load_embedder(os.environ.get("COMMONS_TEST_EMBEDDER", "fake"))
