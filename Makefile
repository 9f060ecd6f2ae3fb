# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-dates mutate lint typecheck unit bench install install-dev lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.main: $(BIN)/python requirements/main.lock pyproject.toml
	$(BIN)/pip install -q -r requirements/main.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(VENV)/.dev: $(BIN)/python requirements/dev.lock pyproject.toml
	$(BIN)/pip install -q -r requirements/dev.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@ $(VENV)/.main

install: $(VENV)/.main
install-dev: $(VENV)/.dev

## Build the demo environment (once) and serve it.
demo: install
	$(BIN)/tally demo

## Lint, type-check and run every test (two pytest workers, one test file at a time each:
## a file's module-scoped servers stay in one process; each worker starts its own PostgreSQL
## and ClickHouse cluster).
test: install-dev
	bash scripts/test-deps.sh
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/mypy
	$(BIN)/pytest -q -n 2 --dist loadfile
	bash scripts/test-dates.sh $(BIN)/pytest

## The date-sensitive tests again under faked machine clocks (part of `make test`).
test-dates: install-dev
	bash scripts/test-deps.sh
	bash scripts/test-dates.sh $(BIN)/pytest

## Mutation testing of the modules that decide numbers (slow; not part of `make test`).
mutate: install-dev
	bash scripts/mutate.sh

## Benchmarks (not part of `make test`); e.g. make bench ARGS=--with-100m
bench: install-dev
	bash scripts/bench-deps.sh
	$(BIN)/python bench/run.py $(ARGS)

## Reliability probes (not part of `make test`; short versions are, in tests/test_soak.py):
## 20 clients x 60 s of mixed load, then 10 kill -9 trials; each checks every acknowledged event.
.PHONY: soak
soak: install-dev
	$(BIN)/python bench/soak.py --clients 20 --seconds 60 $(SOAK_ARGS)
	$(BIN)/python bench/crash.py --trials 10 $(CRASH_ARGS)

## Re-pin the dependencies after changing pyproject.toml.
lock: $(BIN)/python
	$(BIN)/pip install -q uv
	$(BIN)/uv pip compile pyproject.toml -q --python-version 3.11 -o requirements/main.lock
	$(BIN)/uv pip compile pyproject.toml -q --python-version 3.11 --extra dev -o requirements/dev.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
