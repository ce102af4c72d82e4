# Set-up and checks. `make demo` and `make test` work on a fresh machine with Python >= 3.11.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck unit fuzz bench clean

$(BIN)/.installed: pyproject.toml
	@echo "Creating $(VENV) and installing llmrelay with its dev extras (once; about a minute)..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

$(BIN)/.bench-installed: $(BIN)/.installed
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[bench]'
	touch $@

## The main job: a guided tour of real calls against an in-process fake upstream (no key, no network).
demo: $(BIN)/.installed
	$(BIN)/llmrelay demo

## Everything CI checks: lint, format, types, the test suite (with warnings as errors).
test: lint typecheck unit

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(BIN)/.installed
	$(BIN)/mypy

unit: $(BIN)/.installed
	$(BIN)/python -m pytest -W error

## The property tests with fresh random examples (every run differs; `make test` repeats one set).
fuzz: $(BIN)/.installed
	LLMRELAY_HYPOTHESIS=fuzz $(BIN)/python -m pytest -W error -q $(shell grep -rl "@given" tests)

## Benchmarks against raw aiohttp, the openai SDK and LiteLLM (installs the bench extra).
bench: $(BIN)/.bench-installed
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
