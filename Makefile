# Commune sync — every target creates .venv and installs when needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
WORKERS ?= 2

.PHONY: demo test lint bench soak fuzz clean venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)  ## a hub and three communes syncing over a flaky link (DURATION=seconds to stop)
	$(BIN)/python bench/demo.py $(if $(DURATION),--duration $(DURATION),)

test: $(STAMP)  ## the whole test suite (what CI runs), a test file per worker (WORKERS=1: serial)
	$(BIN)/python -m pytest -q $(if $(filter-out 1,$(WORKERS)),-n $(WORKERS) --dist loadfile,) $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff + mypy --strict
	$(BIN)/ruff check protocol service edge_node central_hub tests bench
	$(BIN)/mypy

bench: $(STAMP)  ## benchmarks; figures go to docs/benchmarks.md
	$(BIN)/python bench/sync_throughput.py --dossiers 10000 --edits 1000
	$(BIN)/python bench/ui_speed.py
	$(BIN)/python bench/dashboard_scale.py
	$(BIN)/python bench/fleet.py --communes 1000 --scenario burst,ingest

soak: $(STAMP)  ## long runs: fold algebra, stateful sync, simulations, kill -9, slow links
	FOLD_EXAMPLES=100000 $(BIN)/python -m pytest -q --timeout 0 tests/protocol/test_merge_properties.py
	STATEFUL_EXAMPLES=20000 $(BIN)/python -m pytest -q --timeout 0 tests/sim/test_stateful.py
	$(BIN)/python bench/simulate.py --seed 1 --runs 5 --communes 20 --days 7
	KILL9_RUNS=200 FLAP_MIN_S=5 FLAP_MAX_S=30 FLAP_TOTAL_S=600 SLOW_LINK_MB=20 $(BIN)/python -m pytest -q --timeout 0 tests/faults

fuzz: $(STAMP)  ## 100,000 mutated sync bodies against the hub; schemathesis, 1,000 cases per API operation
	FUZZ_EXAMPLES=100000 $(BIN)/python -m pytest -q --timeout 0 tests/security/test_fuzz.py
	API_FUZZ_EXAMPLES=1000 API_FUZZ_SEED=random $(BIN)/python -m pytest -q --timeout 0 tests/test_schemathesis.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
