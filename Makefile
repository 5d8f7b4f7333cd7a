# Everything a fresh machine needs is installed by these targets (Python 3.11, pip, venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test setup tools lint typecheck unit e2e train bench chaos clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# One stamp per set of extras, redone whenever pyproject.toml changes.
$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[feast]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,feast]'
	touch $@ $(VENV)/.installed-demo

$(VENV)/.installed-train: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[train]'
	touch $@

# MLServer for the end-to-end test with it as the primary (tests/e2e/test_mlserver.py), in a
# virtualenv of its own: its pins conflict with the gateway's. Made only when missing,
# redone when its requirements change (about 2 minutes from an empty pip cache).
MLSERVER_VENV ?= .venv-mlserver
$(MLSERVER_VENV)/.installed: deploy/mlserver/requirements.txt
	test -x $(MLSERVER_VENV)/bin/python || $(PYTHON) -m venv $(MLSERVER_VENV)
	$(MLSERVER_VENV)/bin/pip install --quiet --upgrade pip
	$(MLSERVER_VENV)/bin/pip install --quiet -r deploy/mlserver/requirements.txt
	touch $@

## demo: set up and run the whole local stack (Feast, three model servers, the gateway)
demo: $(VENV)/.installed-demo
	$(BIN)/gateway demo

## test: set up, then lint, type-check and run every test (unit, end-to-end, chaos)
test: setup
	$(MAKE) lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

# Everything the tests need, installed side by side: the three are mostly downloads.
setup:
	$(MAKE) -j3 $(VENV)/.installed-dev $(MLSERVER_VENV)/.installed tools

# System tools the tests drive as the benchmark does (wrk), and promtool (Debian's
# prometheus package) for the alert rules' tests, and chromium for the operator page's
# browser test (driven by playwright, which never downloads a browser here), from Debian
# when missing.
tools:
	@missing=""; \
	command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing from Debian:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

## unit: only the fast tests (no real processes)
unit: $(VENV)/.installed-dev tools
	$(BIN)/pytest -m "not e2e" $(PYTEST_ARGS)

## e2e: only the tests that start real processes
e2e: $(VENV)/.installed-dev $(MLSERVER_VENV)/.installed tools
	$(BIN)/pytest -m e2e $(PYTEST_ARGS)

## bench: the gateway against nginx and a bare aiohttp proxy (installs wrk and nginx via apt)
bench: $(VENV)/.installed-dev
	$(BIN)/python -m loadtest bench

## chaos: every shipped scenario at full length (reports in loadtest/results/NAME/)
chaos: $(VENV)/.installed-dev
	@set -e; for s in loadtest/scenarios/*.yaml; do $(BIN)/python -m loadtest run $$s; done

## train: retrain the committed models deterministically
train: $(VENV)/.installed-train
	$(BIN)/python models/train.py

clean:
	rm -rf $(VENV) $(MLSERVER_VENV) .demo .mypy_cache .ruff_cache .pytest_cache .hypothesis
