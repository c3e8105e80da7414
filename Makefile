# Quickstart targets; see README.md and BUILD.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export TF_CPP_MIN_LOG_LEVEL ?= 2
DEMO_DIR ?= demo_out

.PHONY: install install-parity install-bench test test-all demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The stamp files re-run pip only when setup.py changes.
$(VENV)/.installed-test: setup.py | $(BIN)/python
	$(BIN)/pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed-test

# torch==2.13.0 is a local CPU build on the project machines; an unpinned torch
# would pull several GB of CUDA packages.
$(VENV)/.installed-parity: $(VENV)/.installed-test
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test,parity]"
	touch $@

install-parity: $(VENV)/.installed-parity

install-bench: install-parity
	$(BIN)/pip install -q -e ".[test,parity,bench]"

# Two pytest workers: most tests are single-threaded Python and graph tracing, so one
# process leaves a core idle (on a 2-core EPYC: 20 min with two workers, 34 in one).
# --dist loadfile keeps each file in one worker, so a module-scoped fixture (a tiny
# trained model, an export) is built once.
TEST_WORKERS ?= 2
PYTEST = $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test: install
	$(PYTEST)

test-all: install
	$(PYTEST) -m "slow or not slow"

demo: install
	bash tools/demo.sh $(DEMO_DIR)

bench: install
	$(BIN)/python benchmarks/data_throughput.py

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
