# Everything a fresh machine needs is installed by these targets (Python 3.11, pip, venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test tools lint typecheck unit e2e train bench chaos clean

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

## demo: set up and run the whole local stack (Feast, three model servers, the gateway)
demo: $(VENV)/.installed-demo
	$(BIN)/gateway demo

## test: set up, then lint, type-check and run every test (unit, end-to-end, chaos)
test: $(VENV)/.installed-dev tools lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

# System tools the tests drive as the benchmark does (wrk), and promtool (Debian's
# prometheus package) for the alert rules' tests, from Debian when missing.
tools:
	@command -v wrk >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk; }
	@command -v promtool >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

## unit: only the fast tests (no real processes)
unit: $(VENV)/.installed-dev
	$(BIN)/pytest -m "not e2e" $(PYTEST_ARGS)

## e2e: only the tests that start real processes
e2e: $(VENV)/.installed-dev
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
	rm -rf $(VENV) .demo .mypy_cache .ruff_cache .pytest_cache .hypothesis
