# Berth: `make up` runs the whole platform locally; `make test` runs every check CI runs.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= .berth
PYTEST_ARGS ?=
# Four workers on two cores, a test file per worker at a time (files share module fixtures: a platform, a
# Traefik); 0: serial. With three the two cores were idle a fifth of the run (tests waiting on engines, servers
# and timeouts at once): the whole suite took 25:54 with three and 21:03 with four on the same quiet machine.
PYTEST_WORKERS ?= 4
# The browser tests' screenshots (tests/artifacts/): left out unless asked (SCREENSHOTS=1); they check nothing.
SCREENSHOTS ?= 0

.PHONY: docs help install install-test up up-all-in-one down down-all status logs test lint typecheck pytest test-fast bench chaos lock clean \
	test-lint test-typecheck test-pytest

help:
	@echo "make up          install what is missing and run the platform locally (data in $(DATA_DIR))"
	@echo "make down        stop the control plane (data is kept; Traefik and the apps keep serving)"
	@echo "make down-all    stop Traefik and the applications' containers too (volumes kept; make up starts them)"
	@echo "make status      health of every component"
	@echo "make test        ruff, mypy and the whole test suite (what CI runs)"
	@echo "make test-fast   the tests not marked slow"
	@echo "make bench       the benchmarks, results in benchmarks/results/*.json"
	@echo "make chaos       50 deploys while services, NATS, Postgres, Traefik, the local engine (one of the run's own) and a test server's engine are struck; benchmarks/results/chaos.json"
	@echo "make docs        regenerate the subjects table of docs/architecture.md from the catalogue"
	@echo "make lock        regenerate requirements.lock (names and versions only)"

install:
	@bash deploy/install.sh

install-test:
	@bash deploy/install.sh --test

up:
	@bash deploy/install.sh --docker
	@$(BIN)/berth up --data-dir $(DATA_DIR)

up-all-in-one:
	@bash deploy/install.sh --docker
	@$(BIN)/berth up --data-dir $(DATA_DIR) --all-in-one

down:
	@if [ -x $(BIN)/berth ]; then $(BIN)/berth down --data-dir $(DATA_DIR); fi

down-all:
	@if [ -x $(BIN)/berth ]; then $(BIN)/berth down --all --data-dir $(DATA_DIR); fi

status:
	@$(BIN)/berth status --data-dir $(DATA_DIR)

define LINT
$(BIN)/ruff check .
$(BIN)/ruff format --check libs services cli
endef

define TYPECHECK
$(BIN)/mypy -p berth_common
$(BIN)/mypy -p berth_api -p berth_builder -p berth_scheduler -p berth_proxy_sync -p berth_metrics -p berth_notifier -p berth_cli
endef

lint: install
	$(LINT)

typecheck: install
	$(TYPECHECK)

# Python writes its bytecode during the tests even where the environment says not to (PYTHONDONTWRITEBYTECODE):
# each worker would compile every test module again (about 15 s of CPU each), and each of the hundreds of
# Python processes the tests start (services, `berth up`, the client, migration children) the modules it imports
# (0.5-1 s of CPU for a service). The caches are ignored by git.
TEST_ENV := PYTHONDONTWRITEBYTECODE= BERTH_TEST_SCREENSHOTS=$(SCREENSHOTS)

# A failed test runs once more (not one stopped by its 900 s timeout): on a loaded 2-core machine the few
# thousand tests against real processes meet timings they do not expect about once a run. A rerun is no
# pass for the record: each is listed (`RERUN`), and the end of the output gives its first failure, to fix.
PYTEST := $(TEST_ENV) $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --reruns 1 --rerun-except 'from pytest-timeout' -raR

pytest: install-test
	$(PYTEST) $(PYTEST_ARGS)

# ruff and mypy run beside the tests, after one install: mypy's ~20 s on one core came before the tests with the
# other core idle; beside them it shares both cores with the workers' collection. Any of the three failing fails
# `make test`.
# Their few lines may land among pytest's progress dots: grouping output would hold pytest's back to its end.
test: install-test
	@$(MAKE) --no-print-directory -j3 test-lint test-typecheck test-pytest

test-lint:
	$(LINT)

test-typecheck:
	$(TYPECHECK)

test-pytest:
	$(PYTEST) $(PYTEST_ARGS)

test-fast: install-test
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

bench: install-test
	$(BIN)/python -m benchmarks.run

# CHAOS_ARGS: e.g. --seed N to replay a run, --deploys 10 --kills 3 for a short one
CHAOS_ARGS ?=
chaos: install-test
	$(BIN)/python -m benchmarks.chaos $(CHAOS_ARGS)

docs: install
	$(BIN)/python -m berth_common.subjects

lock:
	$(BIN)/uv pip compile -q requirements.in -o requirements.lock
	@! grep -n '://' requirements.lock || (echo "requirements.lock must not contain URLs" && false)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
