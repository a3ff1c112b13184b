# Set-up and entry points. `make demo`, `make test` and `make docs` build the virtual environment first.
# What they install is pinned by constraints.txt (tested versions; `make lock` refreshes it from
# pyproject's ranges). torch is pinned apart, through a variable a GPU user overrides, e.g.
#   make test TORCH_SPEC="torch==2.13.0 --index-url <their index>"
SHELL := /bin/bash
PYTHON ?= python3.11
TORCH_SPEC ?= torch==2.13.0
# pytest-xdist workers: numba compiles on one core, so the cold suite runs about twice as fast on two;
# work stealing keeps both busy to the end (a few tests take 20-40 s)
TEST_WORKERS ?= auto
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONSTRAINTS := constraints.txt
EXTRAS := test,gpu,docs

.PHONY: venv demo test test-slow docs bench lock clean

venv: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# torch first and pinned, so the project's torch range is satisfied; without the constraints, since a
	# GPU user's index (TORCH_SPEC) may not carry the pinned versions of torch's own dependencies:
	# the next line moves those to the tested versions.
	$(BIN)/python -m pip install $(TORCH_SPEC)
	$(BIN)/python -m pip install -c $(CONSTRAINTS) -e ".[$(EXTRAS)]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/symscore demo

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

test-slow: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m slow

# the documentation site, warnings as errors; the pages' code blocks run in `make test` (tests/test_docs.py)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_kernel.py
	$(BIN)/python benchmarks/bench_targets.py

# Resolve pyproject's ranges afresh in a scratch environment and record the versions as the new
# constraints (torch, triton and CUDA wheels follow TORCH_SPEC and are left out). Run `make test`
# after it: the constraints are the tested set.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --upgrade pip
	.venv-lock/bin/python -m pip install $(TORCH_SPEC)
	.venv-lock/bin/python -m pip install -e ".[$(EXTRAS)]"
	# written beside the old file and moved over it only when the freeze succeeded
	set -o pipefail; { echo "# Tested versions of symscore's dependencies (make lock writes this file; make installs with it)."; \
	  .venv-lock/bin/python -m pip freeze --exclude-editable \
	    | grep -viE '^((torch|triton|pip|setuptools|wheel)==|nvidia-)' ; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	rm -rf .venv-lock
	@echo "wrote $(CONSTRAINTS); run make test"

clean:
	rm -rf $(VENV) build site *.egg-info
