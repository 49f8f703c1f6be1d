"""`commons ask` and `commons reindex`, run as a person runs them: in a real process."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeChatServer

from commons.seeds import SEED_AUTHOR

MIRROR_QUESTION = "how do I run a community mirror?"
CITATION_KEYS = {
    "n", "id", "title", "author", "author_name", "origin", "passage", "score", "page", "start",
    "end", "verified",
}


def run(
    *args: str, home: Path, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "tui", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=280,
        env={**os.environ, **(env or {})},
    )


def ok(*args: str, home: Path, **kwargs: Any) -> str:
    result = run(*args, home=home, **kwargs)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh home with the seed documents (fake embedder, from conftest's environment)."""
    home = tmp_path_factory.mktemp("ask") / "home"
    env = {"COMMONS_EMBEDDER": "fake"}
    ok("init", "--name", "asker", home=home, env=env)
    return home


def check_answer(data: dict[str, Any]) -> None:
    assert set(data) == {"answer", "citations", "abstained", "model", "set_aside", "index"}
    assert set(data["index"]) == {"documents", "dense", "complete", "rate", "note"}
    numbers = [c["n"] for c in data["citations"]]
    assert numbers == list(range(1, len(numbers) + 1))
    assert {int(n) for n in re.findall(r"\[(\d+)\]", data["answer"])} <= set(numbers)
    for c in data["citations"]:
        assert set(c) == CITATION_KEYS


def test_ask_json_cites_seed_documents(seeded: Path) -> None:
    data = json.loads(ok("ask", MIRROR_QUESTION, "--json", home=seeded))
    check_answer(data)
    assert not data["abstained"] and data["citations"]
    for c in data["citations"]:
        assert c["author"] == SEED_AUTHOR.hex() and c["origin"] == "seed"
        assert c["author_name"] == "commons seeds" and c["verified"] is True


def test_ask_prints_the_answer_then_its_sources(seeded: Path) -> None:
    out = ok("ask", "how", "do", "I", "run", "a", "community", "mirror?", home=seeded)
    answer, _, sources = out.partition("\nSources:\n")
    assert "[1]" in answer and sources.startswith("[1] ")
    assert "commons seeds (e94ac362)" in sources and "from seed" in sources
    assert sources.count("(signature verified)") == sources.count("\n[") + 1


def test_each_source_shows_document_author_peer_and_signature() -> None:
    from commons.cli.ask import format_answer

    citation = {
        "n": 1, "id": "ab" * 32, "title": "Smoking fish", "author": "cd" * 32,
        "author_name": "Ana", "origin": "http://10.0.0.7:8765", "passage": "Smoke it slowly.",
        "score": 0.5, "page": None, "start": 0, "end": 16, "verified": True,
    }
    result = {"answer": "Smoke it slowly. [1]", "citations": [citation], "abstained": False}
    lines = format_answer(result).splitlines()
    assert lines[-3:] == [
        "[1] Smoking fish — Ana (cdcdcdcd)",
        f"    {'ab' * 8}  from the peer http://10.0.0.7:8765  (signature verified)",
        "    “Smoke it slowly.”",
    ]
    local = {**citation, "origin": "local", "verified": False}
    text = format_answer({**result, "citations": [local]})
    assert "from this peer (added here)  (signature not checked)" in text


def test_a_question_nothing_answers_abstains(seeded: Path) -> None:
    data = json.loads(ok("ask", "saxophone reed humidity?", "--json", home=seeded))
    assert data["abstained"] and data["citations"] == []
    assert "Nothing in this commons answers" in data["answer"]


@pytest.mark.slow
def test_an_added_file_is_indexed_and_answers(seeded: Path, tmp_path: Path) -> None:
    notes = tmp_path / "goats.md"
    notes.write_text("# Goat care\n\nGoats need a dry shelter and fresh water every day.\n")
    ok("add", str(notes), "--tag", "farm", home=seeded)
    data = json.loads(ok("ask", "what do goats need?", "--tag", "farm", "--json", home=seeded))
    assert [c["title"] for c in data["citations"]] == ["Goat care"]
    mine = json.loads(ok("ask", "what do goats need?", "--author", "asker", "--json",
                         home=seeded))
    assert {c["author_name"] for c in mine["citations"]} == {"asker"}


@pytest.mark.slow
def test_reindex_rebuilds_from_the_store(seeded: Path) -> None:
    out = ok("reindex", home=seeded)
    assert re.match(r"indexed \d+ documents as \d+ passages", out)
    check_answer(json.loads(ok("ask", MIRROR_QUESTION, "--json", home=seeded)))


def test_bad_options_are_explained(seeded: Path) -> None:
    result = run("ask", "why?", "--model", "llama3", home=seeded)
    assert result.returncode == 1 and "give --llm URL too" in result.stderr
    result = run("ask", "why?", "-k", "0", home=seeded)
    assert result.returncode == 1 and "-k must be" in result.stderr
    result = run("ask", "why?", "--local-model", "--gguf", "x.gguf", home=seeded)
    assert result.returncode == 1 and "--local-model is a model of its own" in result.stderr


@pytest.fixture
def chat_server() -> Iterator[FakeChatServer]:
    with FakeChatServer("A community mirror is an always-on peer [1]. It keeps what its"
                        " policy accepts [42].") as server:
        yield server


def test_llm_answers_cite_only_passages_they_were_given(
    seeded: Path, chat_server: FakeChatServer
) -> None:
    data = json.loads(ok("ask", MIRROR_QUESTION, "--llm", chat_server.url, "--model", "tiny",
                         "--json", home=seeded))
    check_answer(data)
    # [42] was never given; the passage that holds the sentence is cited instead.
    assert data["answer"] == (
        "A community mirror is an always-on peer [1]. It keeps what its policy accepts [1].")
    assert len(data["citations"]) == 1 and data["set_aside"] is None
    [request] = chat_server.requests
    body = request["body"]
    assert body["model"] == "tiny" and "[1] " in body["messages"][1]["content"]


def network_off() -> tuple[str, ...] | None:
    """A command prefix that runs a process with no network at all, if this machine has one."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return (unshare, "-n")
    return None


SOCKET_GUARD = """
import socket, sys
def refuse(*args, **kwargs):
    raise OSError("network disabled by the test")
socket.socket.connect = refuse
socket.create_connection = refuse
from tui.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.model
def test_real_model_answers_offline_from_the_seeds(tmp_path: Path) -> None:
    """The promise of the project: a fresh home answers with cited seeds, network unplugged."""
    home = tmp_path / "home"
    env = {"COMMONS_EMBEDDER": "minilm", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    prefix = network_off()

    def offline(*args: str) -> str:
        if prefix is not None:
            return ok(*args, home=home, env=env, prefix=prefix)
        argv = [sys.executable, "-c", SOCKET_GUARD, "--home", str(home), *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=280,
                                env={**os.environ, **env})
        assert result.returncode == 0, result.stderr
        return result.stdout

    offline("init", "--name", "reader")
    data = json.loads(offline("ask", MIRROR_QUESTION, "--json"))
    check_answer(data)
    assert not data["abstained"]
    assert data["citations"] and all(
        c["author"] == SEED_AUTHOR.hex() and c["origin"] == "seed" for c in data["citations"]
    )
    assert "Running a community mirror" in {c["title"] for c in data["citations"]}
    nothing = json.loads(offline("ask", "what is the boiling point of tungsten?", "--json"))
    assert nothing["abstained"] and nothing["citations"] == []


def test_progress_bar_counts_passages_and_rate() -> None:
    import io

    from commons.cli.ask import ProgressBar
    from commons.search.indexer import IndexProgress

    stream = io.StringIO()
    bar = ProgressBar(200, stream=stream)
    bar(IndexProgress(chunks=50, documents=0))
    bar(IndexProgress(chunks=150, documents=3))
    bar.print("added     0123456789abcdef  Notes")
    bar.close()
    out = stream.getvalue()
    assert "added     0123456789abcdef  Notes" in out
    assert "indexing" in out and "200/200 passages" in out and "/s" in out


def test_adding_many_files_indexes_them_in_one_batched_pass(home: Any) -> None:
    from commons.api import LocalApi
    from commons.cli.ask import indexing
    from commons.ingest import Extracted
    from commons.search.indexer import EMBED_SLICE

    api = LocalApi(home)
    index = home.search_index()
    calls: list[int] = []  # passages per call to the embedder
    real_embed = index.embedder.embed_batch

    def counting_embed(texts: list[str]) -> Any:
        calls.append(len(texts))
        return real_embed(texts)

    index.embedder.embed_batch = counting_embed
    docs = [Extracted(f"Note {i}", f"Pigeons number {i} carry messages.", "text/markdown")
            for i in range(20)]  # one passage each
    with indexing(api, [d.body for d in docs]):
        for d in docs:
            api.add(d, title=None, tags=[], licence="CC0", replaces=None)
        # Nothing is embedded while files are added: neither by `add` nor by the
        # worker that store events wake.
        assert calls == []
    assert index.counts()["pending"] == 0
    # One batched pass, each passage once, in slices of EMBED_SLICE (where a stop can
    # end the pass) rather than one call per document.
    assert sum(calls) == len(docs) and calls == sorted(calls, reverse=True)
    assert len(calls) == -(-len(docs) // EMBED_SLICE)



def test_listing_does_not_load_the_model_or_chroma(seeded: Path) -> None:
    script = (
        "import sys\nfrom tui.main import main\n"
        f"main(['--home', {str(seeded)!r}, 'ls'])\n"
        "heavy = {'torch', 'chromadb', 'sentence_transformers', 'transformers'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, env=os.environ.copy())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_reindex_embeds_each_passage_once(home: Any) -> None:
    from commons.api import LocalApi
    from commons.cli.ask import indexing

    api = LocalApi(home)
    calls: list[int] = []
    real_embed = home.embedder.embed_batch
    home.embedder.embed_batch = lambda texts: calls.append(len(texts)) or real_embed(texts)
    with indexing(api):
        result = api.reindex()
    assert result["chunks"] > 0 and sum(calls) == result["chunks"]
