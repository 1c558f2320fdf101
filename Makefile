# Two entry points on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: env demo findings test lint docs bench bench-core bench-scale bench-inference clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch is pinned to the CPU wheel (2.13.0); see README.
	$(PY) -m pip install --quiet -e ".[all]"
	touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ccalens demo --out results/demo
	@$(PY) tools/update_findings.py results/demo/results.json --check

# After `make demo`: the README's and the docs' demo-findings blocks from this run (docs/demo-findings.json).
findings:
	$(PY) tools/update_findings.py results/demo/results.json

test: $(STAMP)
	$(PY) -m ruff check ccalens tests benchmarks tools
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check ccalens tests benchmarks tools

# The docs site (mkdocs.yml, docs/): warnings are errors, broken internal links and anchors included, and the
# pages' examples run during the build; open site/index.html. NO_MKDOCS_2_WARNING silences mkdocs-material's
# banner about MkDocs 2.0 (not a warning about this site).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: $(STAMP)
	$(PY) -m benchmarks.run_all

bench-core: $(STAMP)
	$(PY) -m benchmarks.bench_core

bench-scale: $(STAMP)
	$(PY) -m benchmarks.bench_scale

bench-inference: $(STAMP)
	$(PY) -m benchmarks.bench_inference

clean:
	rm -rf $(VENV) results site .pytest_cache .hypothesis
