"""The fast embedder (onnxruntime) against the reference (sentence-transformers)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from commons.search.chunking import chunk_text, embedding_text
from commons.search.embedding import load_embedder
from commons.search.onnx import OnnxMiniLM, onnx_path

ROOT = Path(__file__).resolve().parent.parent


def project_texts() -> list[str]:
    """Passages of the seed documents and of the project's own docs, as the index embeds
    them, and single sentences of them (other lengths): a few hundred real texts."""
    passages: list[str] = []
    sentences: list[str] = []
    sources = sorted(ROOT.glob("seeds/*.md")) + sorted(ROOT.glob("docs/*.md"))
    for path in sources:
        for chunk in chunk_text(path.read_text(encoding="utf-8")):
            passages.append(embedding_text(path.stem, chunk.text))
            sentences += [s for s in re.split(r"(?<=[.?!])\s+", chunk.text) if len(s) > 20][:2]
    return passages + sentences


@pytest.mark.slow
@pytest.mark.model
def test_both_backends_give_the_same_vectors(onnx_cache: Path) -> None:
    import numpy as np

    texts = project_texts()
    assert len(texts) >= 300
    fast = np.asarray(load_embedder("minilm", cache_dir=onnx_cache).embed_batch(texts))
    reference = np.asarray(load_embedder("minilm-st").embed_batch(texts))
    assert fast.shape == reference.shape == (len(texts), 384)
    cosines = (fast * reference).sum(axis=1) / (
        np.linalg.norm(fast, axis=1) * np.linalg.norm(reference, axis=1)
    )
    assert float(cosines.min()) >= 0.9999, sorted(cosines)[:5]
    # Same name and size: an index built by one stays valid with the other.
    assert (OnnxMiniLM.name, OnnxMiniLM.dimension) == (
        load_embedder("minilm-st").name, load_embedder("minilm-st").dimension)


@pytest.mark.slow
@pytest.mark.model
def test_asking_imports_neither_torch_nor_sentence_transformers(
    onnx_cache: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    env_script = (
        "import sys\nfrom tui.main import main\n"
        f"main(['--home', {str(home)!r}, 'ask', 'how do I run a community mirror?'])\n"
        "heavy = {'torch', 'sentence_transformers', 'transformers', 'sklearn', 'scipy'}\n"
        "print('HEAVY', sorted(heavy & set(sys.modules)))\n"
    )
    env = {"COMMONS_EMBEDDER": "minilm", "COMMONS_CACHE": str(onnx_cache)}
    import os

    init = subprocess.run([sys.executable, "-m", "tui", "--home", str(home), "init"],
                          capture_output=True, text=True, timeout=280, env={**os.environ, **env})
    assert init.returncode == 0, init.stderr
    result = subprocess.run([sys.executable, "-c", env_script], capture_output=True, text=True,
                            timeout=280, env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    assert "Sources:" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_a_corrupt_export_in_the_cache_says_what_to_do(tmp_path: Path) -> None:
    from commons.model.errors import CommonsError

    path = onnx_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an onnx model")
    with pytest.raises(CommonsError, match="delete that file"):
        OnnxMiniLM(tmp_path).embed_batch(["a question"])
