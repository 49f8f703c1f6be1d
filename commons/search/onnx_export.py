"""Export the packaged all-MiniLM-L6-v2 weights to ONNX, once, with torch.

Run at install (`python -m commons.search.onnx_export`, which `make install`
does) or on first use by `commons.search.onnx`. The file is written beside its
final name and renamed into place, so a crash or a second process exporting
at the same moment never leaves a half-written model in the cache.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from commons.model.errors import CommonsError

log = logging.getLogger(__name__)

OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def export_onnx(model_path: str, target: Path) -> None:
    """Write the transformer of the model at `model_path` (its last hidden state) to `target`."""
    from commons.search.embedding import _offline

    _offline()  # before transformers is imported: it reads the hub settings once
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise CommonsError(
            f"exporting the embedding model needs {exc.name}; run `make install`"
        ) from exc
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    model = transformers.AutoModel.from_pretrained(model_path, local_files_only=True).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    sample = tokenizer(
        ["a short text", "a somewhat longer text to give the sequence axis a size"],
        padding=True,
        return_tensors="pt",
    )

    class LastHiddenState(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "last_hidden_state")}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                LastHiddenState(model),
                tuple(sample[name] for name in INPUTS),
                tmp,
                input_names=list(INPUTS),
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("exported the embedding model to %s", target)


def main(argv: list[str]) -> int:
    """`python -m commons.search.onnx_export CACHE_DIR`: export into that cache if needed."""
    from commons.search.onnx import ensure_onnx

    if len(argv) != 1:
        print("usage: python -m commons.search.onnx_export CACHE_DIR", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    print(ensure_onnx(Path(argv[0]).expanduser()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
