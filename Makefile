# The two commands the README gives: `make run` and `make test`.  Both build .venv from
# pyproject.toml on first use, so they work on a fresh machine.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench screenshots

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/mdtui

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) bench/allocator_bench.py
	$(PY) bench/tui_bench.py

screenshots: $(STAMP)
	$(PY) -m mdtui.scenarios screenshots
