# The two commands: `make demo` runs the whole pipeline on the embedded defaults (no GPU, no hub);
# `make test` runs the tests. Both create or reuse .venv through scripts/setup_venv.sh.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-fast bench clean-demo

setup:
	@bash scripts/setup_venv.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	@$(PY) -m pytest -q --durations=20

test-fast: setup
	@$(PY) -m pytest -q -m "not slow"

bench: setup
	@$(PY) -m benchmarks

clean-demo:
	rm -rf demo-out
