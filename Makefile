# Two commands for a newcomer: `make run` (install + serve on SQLite, no Redis) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test bench

$(BIN)/sisong: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,voice]"
	touch $(BIN)/sisong

install: $(BIN)/sisong

run: install
	$(BIN)/sisong serve

test: install
	$(BIN)/python -m pytest -q -n 2

bench: install
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python bench/webhook.py
