# Set-up and entry points. Both `make demo` and `make test` build the virtual environment first.
# A GPU user overrides the torch pin, e.g.  make test TORCH_SPEC="torch==2.13.0 --index-url ..."
PYTHON ?= python3.11
TORCH_SPEC ?= torch==2.13.0
# pytest-xdist workers: numba compiles on one core, so the cold suite runs about twice as fast on two
TEST_WORKERS ?= auto
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-slow bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# torch first and pinned, so the project's torch>=2.4 range is already satisfied.
	$(BIN)/python -m pip install $(TORCH_SPEC)
	$(BIN)/python -m pip install -e ".[test,gpu]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/symscore demo

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_kernel.py
	$(BIN)/python benchmarks/bench_targets.py

clean:
	rm -rf $(VENV) build *.egg-info
