# analytics-loader: `make demo` (see it work locally) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
TOOLS := .venv-tools
PY := $(VENV)/bin/python

.PHONY: demo test bench clean venv tools

venv: $(VENV)/.installed
tools: $(TOOLS)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	touch $@

$(TOOLS)/.installed: requirements-tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check -r requirements-tools.txt
	touch $@

## demo: simulator + function served locally, triggered over HTTP, loaded rows shown (DuckDB)
demo: venv
	$(PY) scripts/demo.py

## test: the whole suite (unit, end-to-end against the simulator, Terraform checks)
test: venv tools
	CHECKOV_BIN=$(CURDIR)/$(TOOLS)/bin/checkov $(PY) -m pytest

## bench: the seed's configuration as-is vs this loader, against the simulator
bench: venv
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(TOOLS) .demo .pytest_cache bench/out
