# Commune sync — every target creates .venv and installs when needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test lint bench soak fuzz clean venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)  ## a hub and three communes syncing over a flaky link (DURATION=seconds to stop)
	$(BIN)/python bench/demo.py $(if $(DURATION),--duration $(DURATION),)

test: $(STAMP)  ## the whole test suite (what CI runs)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff + mypy --strict
	$(BIN)/ruff check protocol service edge_node central_hub tests bench
	$(BIN)/mypy

bench: $(STAMP)  ## benchmarks; figures go to docs/benchmarks.md
	$(BIN)/python bench/sync_throughput.py --dossiers 10000

soak: $(STAMP)  ## longer property runs
	FOLD_EXAMPLES=10000 $(BIN)/python -m pytest -q tests/protocol/test_merge_properties.py

fuzz: $(STAMP)  ## hostile sync bodies: 100,000 Hypothesis mutants against the hub
	FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),100000) $(BIN)/python -m pytest -q tests/security/test_fuzz.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
