# Commune sync — every target creates .venv and installs when needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
WORKERS ?= 2
WHEELHOUSE ?= wheelhouse
# pip download options for PCs unlike this one, e.g. --platform manylinux2014_x86_64 --python-version 3.11
WHEEL_TARGET ?=
# the locks: one resolution for every platform and Python >= 3.11, with the hashes of every file
LOCK := $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command "make lock" --quiet $(if $(UPGRADE),--upgrade,)
# role (lock file) : extras of commune-sync it installs
ROLES := edge:edge hub:hub hub-postgres:hub,postgres

.PHONY: demo test lint bench soak fuzz clean venv lock wheelhouse

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
	$(BIN)/python bench/online_intake.py
	$(BIN)/python bench/merger.py
	$(BIN)/python bench/fleet --communes 1000 --scenario burst,ingest

soak: $(STAMP)  ## long runs: fold algebra, stateful sync, simulations, kill -9, slow links
	FOLD_EXAMPLES=100000 $(BIN)/python -m pytest -q --timeout 0 tests/protocol/test_merge_properties.py
	STATEFUL_EXAMPLES=20000 $(BIN)/python -m pytest -q --timeout 0 tests/sim/test_stateful.py
	$(BIN)/python bench/simulate.py --seed 1 --runs 5 --communes 20 --days 7
	KILL9_RUNS=200 FLAP_MIN_S=5 FLAP_MAX_S=30 FLAP_TOTAL_S=600 SLOW_LINK_MB=20 $(BIN)/python -m pytest -q --timeout 0 tests/faults

fuzz: $(STAMP)  ## 100,000 mutated sync bodies against the hub; schemathesis, 1,000 cases per API operation
	FUZZ_EXAMPLES=100000 $(BIN)/python -m pytest -q --timeout 0 tests/security/test_fuzz.py
	API_FUZZ_EXAMPLES=1000 API_FUZZ_SEED=random $(BIN)/python -m pytest -q --timeout 0 tests/test_schemathesis.py

lock: $(STAMP)  ## requirements/*.txt, pinned with hashes; keeps today's pins unless UPGRADE=1
	$(LOCK) --extra dev -o requirements/dev.txt
	for role in $(ROLES); do \
	    $(LOCK) $$(echo $${role#*:} | sed 's/\([a-z]*\),*/--extra \1 /g') -c requirements/dev.txt \
	        -o requirements/$${role%%:*}.txt || exit 1; \
	done

wheelhouse: $(STAMP)  ## everything an offline PC installs, in $(WHEELHOUSE)/ (docs/deployment.md)
	rm -rf $(WHEELHOUSE) && mkdir -p $(WHEELHOUSE)
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir $(WHEELHOUSE) .
	for role in $(ROLES); do \
	    $(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
	        $(WHEEL_TARGET) --dest $(WHEELHOUSE) -r requirements/$${role%%:*}.txt || exit 1; \
	done
	# each role's lock plus commune-sync itself, so one hash-checked install does it all
	cd $(WHEELHOUSE) && wheel=$$(ls commune_sync-*.whl) && version=$$(echo $$wheel | cut -d- -f2) \
	    && hash=$$(sha256sum $$wheel | cut -d' ' -f1) && for role in $(ROLES); do \
	    { cat $(CURDIR)/requirements/$${role%%:*}.txt; \
	      printf 'commune-sync[%s]==%s \\\n    --hash=sha256:%s\n' $${role#*:} $$version $$hash; \
	    } > $${role%%:*}.txt || exit 1; done
	@echo "$(WHEELHOUSE)/: $$(ls $(WHEELHOUSE)/*.whl | wc -l) wheels; on the offline PC:"
	@echo "  python3 -m venv /opt/commune-sync"
	@echo "  /opt/commune-sync/bin/pip install --no-index --find-links $(WHEELHOUSE) --require-hashes -r $(WHEELHOUSE)/edge.txt"
	@echo "  (hub.txt for a hub on SQLite, hub-postgres.txt for a hub on PostgreSQL)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
