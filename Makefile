# The project's commands. `make test` is the one test command (README.md, .ci/run).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help install testenv test unit lint bench clean

help:
	@echo "make install   create $(VENV) and install platform with its test extra"
	@echo "make testenv   get the real test binaries (kube-apiserver, etcd, kwok, bao, tofu, ...)"
	@echo "make test      testenv + every test tier (unit, integration, e2e)"
	@echo "make unit      only the fast unit tests"
	@echo "make lint      ruff, mypy (strict) and the import-layer contracts"
	@echo "make bench     the benchmarks in bench/ (ratios against peers)"

$(BIN)/platform: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

install: $(BIN)/platform

testenv: $(BIN)/platform
	$(BIN)/python -m testenv

test: testenv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: $(BIN)/platform
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

lint: $(BIN)/platform
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy bootstrap stacks testenv tests bench
	$(BIN)/lint-imports

bench: testenv
	@for script in bench/*_bench.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
