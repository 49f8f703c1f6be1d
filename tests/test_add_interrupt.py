"""Ctrl-C during `commons add` keeps every document already stored; indexing resumes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from commons.search.embedding import load_embedder
from commons.service import Commons
from commons.storage.home import HomePaths

pytestmark = [pytest.mark.slow, pytest.mark.model]

WORDS = (
    "seed", "water", "grain", "mill", "roof", "clay", "kiln", "loom",
    "thread", "goat", "well", "forest", "path", "bridge",
)
FILES = 24


def test_ctrl_c_during_add_keeps_what_was_stored(onnx_cache: Path, tmp_path: Path) -> None:
    env = {**os.environ, "COMMONS_EMBEDDER": "minilm", "COMMONS_CACHE": str(onnx_cache)}
    home = tmp_path / "home"
    init = subprocess.run([sys.executable, "-m", "tui", "--home", str(home), "init"],
                          capture_output=True, text=True, timeout=280, env=env)
    assert init.returncode == 0, init.stderr
    rng = random.Random(3)
    paths = []
    for i in range(FILES):
        body = "\n\n".join(" ".join(rng.choice(WORDS) for _ in range(150)) for _ in range(4))
        paths.append(tmp_path / f"note-{i:02d}.md")
        paths[-1].write_text(f"# Field note {i}\n\n{body}\n", encoding="utf-8")

    proc = subprocess.Popen(
        [sys.executable, "-m", "tui", "--home", str(home), "add", *map(str, paths)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    assert proc.stdout is not None
    added = []
    while len(added) < FILES:  # each line comes as its document is stored
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        added.append(line.split())
    time.sleep(1.0)  # into the embedding of the passages
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and f"the {FILES} documents above are stored" in err
    assert all(words[0] == "added" for words in added)

    listed = json.loads(subprocess.run(
        [sys.executable, "-m", "tui", "--home", str(home), "ls", "--json"],
        capture_output=True, text=True, timeout=120, env=env, check=True).stdout)
    titles = {d["title"] for d in listed}
    assert {f"Field note {i}" for i in range(FILES)} <= titles

    # The next start makes the missing vectors.
    with Commons(HomePaths(home), clock=lambda: int(time.time()),
                 embedder=load_embedder("minilm", cache_dir=onnx_cache)) as commons:
        before = commons.index_state()
        assert before.documents >= FILES and not before.complete
        commons.search_index()  # waits for the vectors
        assert commons.index_state().complete
