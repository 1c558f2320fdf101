# Two entry points on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: env demo test lint bench bench-core bench-scale bench-inference clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch is pinned to the CPU wheel (2.13.0); see README.
	$(PY) -m pip install --quiet -e ".[all]"
	touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ccalens demo --out results/demo

test: $(STAMP)
	$(PY) -m ruff check ccalens tests benchmarks
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check ccalens tests benchmarks

bench: $(STAMP)
	$(PY) -m benchmarks.run_all

bench-core: $(STAMP)
	$(PY) -m benchmarks.bench_core

bench-scale: $(STAMP)
	$(PY) -m benchmarks.bench_scale

bench-inference: $(STAMP)
	$(PY) -m benchmarks.bench_inference

clean:
	rm -rf $(VENV) results .pytest_cache .hypothesis
